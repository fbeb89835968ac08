package release_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
)

// An execution left running by a killed `cutover run` says what to do
// with it; one whose process runs says nothing more.
func TestExecutionOfAKilledRunSaysWhatToDo(t *testing.T) {
	dir, home := t.TempDir(), t.TempDir()
	y := "version: 1\nproject: shop\nservices:\n  web: { image: shop/web:1, port: 8000 }\nenvironments:\n  production: { listen: { port: 18080 } }\n"
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := release.Open(ctx, filepath.Join(dir, "cutover.yaml"), home)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	for _, x := range []store.Execution{
		{ID: "x-killed", OwnerPID: dead.Process.Pid},
		{ID: "x-live", OwnerPID: os.Getppid()},
	} {
		x.Project, x.Pipeline, x.Trigger, x.Branch, x.Status, x.OwnerHost = "shop", "main", "manual", "main", store.ExecutionRunning, host
		x.Commit = "0123456789012345678901234567890123456789"
		if err := m.Store.CreateExecution(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	v, err := m.Execution(ctx, "x-killed")
	if err != nil || !strings.Contains(v.Orphaned, "is gone") || !strings.Contains(v.Orphaned, "cutover cancel x-killed") {
		t.Errorf("execution of a killed run: %q (%v), want it to say its process is gone and to cancel it", v.Orphaned, err)
	}
	if v, err := m.Execution(ctx, "x-live"); err != nil || v.Orphaned != "" {
		t.Errorf("execution whose process runs: %q (%v), want nothing", v.Orphaned, err)
	}
}

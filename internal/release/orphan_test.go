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
	ctx := context.Background()
	m := openShop(t)
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

// A deployment whose cutover was killed, which status cannot roll back
// (here the engine is down), is named with what to do, not shown as if it
// still ran down its waits.
func TestStatusOfADeploymentWhoseCutoverIsGoneSaysWhatToDo(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	ctx := context.Background()
	m := openShop(t)
	for _, id := range []string{"r-1", "r-2"} {
		rev := store.Revision{ID: id, Project: "shop", Environment: "production", Source: "test",
			Services: map[string]store.ServiceRevision{"web": {Image: "sha256:" + strings.Repeat("ab", 32)}}}
		if err := m.Store.CreateRevision(ctx, rev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Store.PutEnvState(ctx, store.EnvState{Project: "shop", Environment: "production", Revision: "r-1", Status: "up"}, 0); err != nil {
		t.Fatal(err)
	}
	// In progress, and nobody holds the environment's lease: its cutover died.
	d := store.Deployment{ID: "d-1", Project: "shop", Environment: "production", Revision: "r-2", PreviousRevision: "r-1",
		Strategy: "blue_green", Phase: "Shifting", Status: store.DeploymentInProgress, TrafficPercent: 10, Owner: "root (pid 1 on vm)"}
	if err := m.Store.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(ctx, "production")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(st[0].Unread, "\n")
	if !strings.Contains(joined, "deployment d-1: the cutover that drove it") || !strings.Contains(joined, "is gone") || !strings.Contains(joined, "cutover status production") {
		t.Errorf("status of a deployment whose cutover is gone: unread %q, want it named with what to do", st[0].Unread)
	}

	// Two such environments: each names its own deployment only (the
	// environments' lists start from the same unread list).
	rev := store.Revision{ID: "r-3", Project: "shop", Environment: "staging", Source: "test",
		Services: map[string]store.ServiceRevision{"web": {Image: "sha256:" + strings.Repeat("cd", 32)}}}
	if err := m.Store.CreateRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	d2 := store.Deployment{ID: "d-2", Project: "shop", Environment: "staging", Revision: "r-3",
		Strategy: "rolling", Phase: "Shifting", Status: store.DeploymentInProgress, TrafficPercent: 50, Owner: "root (pid 1 on vm)"}
	if err := m.Store.CreateDeployment(ctx, d2); err != nil {
		t.Fatal(err)
	}
	all, err := m.Status(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		mine, other := "deployment d-1:", "deployment d-2:"
		if s.Environment == "staging" {
			mine, other = other, mine
		}
		joined := strings.Join(s.Unread, "\n")
		if !strings.Contains(joined, mine) || strings.Contains(joined, other) {
			t.Errorf("status of %s: unread %q, want %q and not %q", s.Environment, s.Unread, mine, other)
		}
	}
}

// openShop is the Manager of a small project, shop (one service, web, from
// an image; environments production and staging), with a home of its own.
func openShop(t *testing.T) *release.Manager {
	t.Helper()
	dir := t.TempDir()
	y := "version: 1\nproject: shop\nservices:\n  web: { image: shop/web:1, port: 8000 }\nenvironments:\n  production: { listen: { port: 18080 } }\n  staging: { listen: { port: 18090 } }\n"
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := release.Open(context.Background(), filepath.Join(dir, "cutover.yaml"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

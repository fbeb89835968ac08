package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// TestInterruptedUpIsAuditedWithItsOutcome: Ctrl-C on `cutover up` (here
// while a build command runs) ends it with its own error, and the audit log
// holds the outcome beside the "started" entry. The outcome used to be
// written with the command's cancelled context: the entry was lost and the
// command said "cannot write the audit log: store: open ...: context
// canceled" before its own error.
func TestInterruptedUpIsAuditedWithItsOutcome(t *testing.T) {
	testenv.RequireDocker(t)
	bin := testenv.CutoverBinary(t)
	project := fmt.Sprintf("intr%d", time.Now().UnixNano()%1_000_000_000)
	repo, _ := testenv.GitRepo(t, "main", map[string]string{
		"cutover.yaml": fmt.Sprintf(`version: 1
project: %s
services:
  web:
    build: { context: web, commands: ["touch started && exec sleep 30"] }
    port: 8080
environments:
  production: { listen: { port: %d, test_port: %d } }
`, project, testenv.FreePort(t), testenv.FreePort(t)),
		"web/Dockerfile": "FROM scratch\nCOPY started /started\n",
	})
	c := testenv.CLI{Bin: bin, File: filepath.Join(repo, "cutover.yaml"), Home: t.TempDir()}
	t.Cleanup(func() {
		_ = c.Command("proxy", "stop", "--grace", "1s").Run()
		testenv.RemoveProject(project)
	})

	cmd := c.Command("up", "production")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	exited, errp := background(t, cmd)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(repo, "web", "started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the build command never started:\n%s", stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(45 * time.Second):
		t.Fatalf("cutover up did not end within 45s of SIGINT:\n%s", stderr.String())
	}
	if *errp == nil {
		t.Fatalf("an interrupted up exited 0:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "cannot write the audit log") {
		t.Errorf("an interrupted up could not write its audit entry:\n%s", stderr.String())
	}

	out, errOut, err := c.Run("audit", "-o", "json")
	if err != nil {
		t.Fatalf("cutover audit: %v\n%s", err, errOut)
	}
	var entries []struct{ Action, Outcome string }
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("cutover audit -o json: %v\n%s", err, out)
	}
	var started, ended bool
	for _, e := range entries {
		if e.Action != "up" {
			continue
		}
		started = started || e.Outcome == "started"
		ended = ended || (e.Outcome != "started" && e.Outcome != "ok")
	}
	if !started || !ended {
		t.Errorf("audit log after an interrupted up: started %v, outcome recorded %v\n%s", started, ended, out)
	}
}

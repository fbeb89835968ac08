package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/proc"
	"github.com/cutoverdev/cutover/internal/store"
)

// `cutover run` killed (kill -9) in a stage, with no daemon to recover it:
// `cutover cancel` ends the execution, and the command it left running.
// Before, the cancel was only recorded for a runner that no longer
// existed: the execution stayed running for good (retrying ran a new one
// beside it) and its command ran on; only editing the store ended it.
func TestCancelOfAnExecutionWhoseRunnerWasKilledEndsIt(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// The killed runner: a process that has ended.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	// The command it ran, in a process group of its own, still running.
	left := exec.Command("sleep", "60")
	left.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = left.Wait(); close(exited) }()
	t.Cleanup(func() { _ = left.Process.Kill() })

	host, _ := os.Hostname()
	started := time.Now().UTC()
	stages, _ := json.Marshal([]StageState{{Name: "build", Status: StatusRunning, Started: &started,
		Actions: []ActionState{{Name: "slow", Kind: "command", Status: StatusRunning}}}})
	x := store.Execution{ID: "x-killed-run", Project: "co-test", Pipeline: "main", Trigger: TriggerManual,
		Branch: "main", Commit: "0123456789012345678901234567890123456789", Status: store.ExecutionRunning,
		OwnerPID: dead.Process.Pid, OwnerHost: host, Stages: stages,
		Variables: recordedVars(Trigger{Kind: TriggerManual, Repo: "/nonexistent", Branch: "main"})}
	if err := st.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	pid := left.Process.Pid
	if err := st.AddProcess(ctx, store.Process{Execution: x.ID, PGID: pid, StartTicks: proc.StartTime(pid), Host: host, StartedAt: started}); err != nil {
		t.Fatal(err)
	}

	e := &Engine{Store: st, Home: t.TempDir()}
	got, err := e.Cancel(ctx, x.ID, "alice")
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	stored, err := st.GetExecution(ctx, x.ID)
	if err != nil || stored.Status != store.ExecutionCancelled || got.Status != store.ExecutionCancelled || !strings.Contains(stored.Error, "alice") {
		t.Errorf("after cancel the execution is %s (returned %s), error %q (%v); want cancelled by alice", stored.Status, got.Status, stored.Error, err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Errorf("the command the killed run left (pid %d) still runs after the cancel", pid)
	}
	// An execution whose runner is alive is only asked, as before.
	y := x
	y.ID, y.OwnerPID = "x-live-run", os.Getpid()
	if err := st.CreateExecution(ctx, y); err != nil {
		t.Fatal(err)
	}
	if got, err := e.Cancel(ctx, y.ID, "alice"); err != nil || got.Status != store.ExecutionRunning {
		t.Errorf("cancel of a live runner's execution: %s (%v), want it left running for its runner", got.Status, err)
	}
}

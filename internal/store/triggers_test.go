package store

import (
	"errors"
	"path/filepath"
	"testing"
)

// A delivery is accepted once, even by two stores (two daemons) on one
// file, and the queued trigger is in the file as soon as QueueExecution returns.
func TestQueueExecutionAcceptsADeliveryOnceAndSurvivesAReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "cutover.db")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	d := Delivery{Source: "github", ID: "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
	id, err := a.QueueExecution(ctx, testExecution("x-1"), d, nil)
	if err != nil || id != "x-1" {
		t.Fatalf("first delivery: %q %v", id, err)
	}
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	id, err = b.QueueExecution(ctx, testExecution("x-2"), d, nil)
	if !errors.Is(err, ErrDuplicate) || id != "x-1" {
		t.Fatalf("replayed delivery: %q %v, want ErrDuplicate pointing at x-1", id, err)
	}
	if _, err := b.GetExecution(ctx, "x-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the replay queued an execution: %v", err)
	}
	// The same id from another source is another delivery.
	if _, err := b.QueueExecution(ctx, testExecution("x-3"), Delivery{Source: "generic", ID: d.ID}, nil); err != nil {
		t.Fatal(err)
	}
	a.Close() // a "crash" after the answer: the trigger is on disk
	c, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	active, err := c.ActiveExecutions(ctx, "bluemed")
	if err != nil || len(active) != 2 || active[0].Status != ExecutionQueued {
		t.Fatalf("after reopening: %+v %v, want x-1 and x-3 queued", active, err)
	}
}

func TestQueueExecutionSupersedesOnlyWhatIsStillQueued(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	for _, id := range []string{"x-1", "x-2"} {
		if _, err := s.QueueExecution(ctx, testExecution(id), Delivery{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	claimed, _ := s.GetExecution(ctx, "x-2")
	claimed.Status, claimed.OwnerPID, claimed.OwnerHost = ExecutionRunning, 42, "h"
	if _, err := s.UpdateExecution(ctx, claimed, claimed.Generation); err != nil {
		t.Fatal(err)
	}
	if _, err := s.QueueExecution(ctx, testExecution("x-3"), Delivery{}, []string{"x-1", "x-2"}); err != nil {
		t.Fatal(err)
	}
	x1, _ := s.GetExecution(ctx, "x-1")
	x2, _ := s.GetExecution(ctx, "x-2")
	if x1.Status != ExecutionSuperseded || x1.FinishedAt == nil || x2.Status != ExecutionRunning || x2.OwnerPID != 42 {
		t.Fatalf("x-1 %s (finished %v), x-2 %s owner %d: want superseded, and running untouched", x1.Status, x1.FinishedAt, x2.Status, x2.OwnerPID)
	}
	if _, err := s.QueueExecution(ctx, Execution{ID: "x-4", Project: "p", Pipeline: "main", Trigger: "push", Status: ExecutionRunning}, Delivery{}, nil); err == nil {
		t.Fatal("QueueExecution accepted an execution that is not queued")
	}
}

func TestProcessesAreRecordedAndForgotten(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	if err := s.CreateExecution(ctx, testExecution("x-1")); err != nil {
		t.Fatal(err)
	}
	for _, pg := range []int{100, 200} {
		if err := s.AddProcess(ctx, Process{Execution: "x-1", PGID: pg, StartTicks: 1 << 40, Host: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RemoveProcess(ctx, "x-1", 100); err != nil {
		t.Fatal(err)
	}
	ps, err := s.Processes(ctx, "x-1")
	if err != nil || len(ps) != 1 || ps[0].PGID != 200 || ps[0].StartTicks != 1<<40 || ps[0].Host != "h" {
		t.Fatalf("Processes = %+v %v", ps, err)
	}
}

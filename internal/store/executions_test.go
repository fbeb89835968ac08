package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testExecution(id string) Execution {
	return Execution{ID: id, Project: "bluemed", Pipeline: "default", Trigger: TriggerPush, Branch: "develop",
		Commit: strings.Repeat("c", 40)}
}

func TestExecutionRoundTrip(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	want := testExecution("x-1")
	want.Variables = json.RawMessage(`{"CUTOVER_SHORT_SHA":"ccccccc"}`)
	want.Stages = json.RawMessage(`[{"name":"build","status":"pending"}]`)
	want.CreatedAt = testTime
	if err := s.CreateExecution(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetExecution(ctx, "x-1")
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(got.UpdatedAt) > time.Hour || !got.StartedAt.IsZero() || got.FinishedAt != nil {
		t.Fatalf("UpdatedAt %v, StartedAt %v, FinishedAt %v; want now, zero, nil", got.UpdatedAt, got.StartedAt, got.FinishedAt)
	}
	want.Status, want.Generation, want.UpdatedAt = ExecutionQueued, 1, got.UpdatedAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetExecution =\n%+v\nwant\n%+v", got, want)
	}
	// A person reads this one (cutover logs|cancel|approve X): what is
	// missing and how to find the right ID, no package prefix, yet ErrNotFound.
	if _, err := s.GetExecution(ctx, "x-missing"); !errors.Is(err, ErrNotFound) ||
		err.Error() != "there is no execution x-missing (`cutover executions` lists them)" {
		t.Fatalf("GetExecution(missing): %v, want ErrNotFound saying how to list the executions", err)
	}
	b, _ := json.Marshal(got)
	for _, key := range []string{`"status":"queued"`, `"trigger":"push"`, `"stages":[{`, `"generation":1`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	for _, key := range []string{"started_at", "finished_at", `"error"`} {
		if strings.Contains(string(b), key) {
			t.Errorf("JSON %s of a queued execution has %s", b, key)
		}
	}
}

func TestCreateExecutionRefuses(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	if err := s.CreateExecution(ctx, testExecution("x-1")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateExecution(ctx, testExecution("x-1")); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "x-1") {
		t.Errorf("reused ID: %v, want ErrConflict naming x-1", err)
	}
	for name, mutate := range map[string]func(*Execution){
		"no ID":         func(e *Execution) { e.ID = "" },
		"no project":    func(e *Execution) { e.Project = "" },
		"no pipeline":   func(e *Execution) { e.Pipeline = "" },
		"no trigger":    func(e *Execution) { e.Trigger = "" },
		"bad status":    func(e *Execution) { e.Status = "done" },
		"bad variables": func(e *Execution) { e.Variables = json.RawMessage("{") },
		"bad stages":    func(e *Execution) { e.Stages = json.RawMessage("[") },
	} {
		e := testExecution("x-2")
		mutate(&e)
		if err := s.CreateExecution(ctx, e); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestExecutionLifecycle(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	e := testExecution("x-1")
	e.Branch, e.Commit = "", "" // queued before the branch is resolved
	if err := s.CreateExecution(ctx, e); err != nil {
		t.Fatal(err)
	}
	e, _ = s.GetExecution(ctx, "x-1")
	e.Branch, e.Commit, e.Status = "develop", strings.Repeat("a", 40), ExecutionRunning
	gen, err := s.UpdateExecution(ctx, e, 1)
	if err != nil || gen != 2 {
		t.Fatalf("UpdateExecution(expect 1) = %d, %v; want 2, nil", gen, err)
	}
	if _, err := s.UpdateExecution(ctx, e, 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	e, _ = s.GetExecution(ctx, "x-1")
	if e.StartedAt.IsZero() || e.FinishedAt != nil || e.Generation != 2 || e.Commit != strings.Repeat("a", 40) {
		t.Fatalf("running: %+v", e)
	}
	started := e.StartedAt
	for name, mutate := range map[string]func(*Execution){
		"project":  func(e *Execution) { e.Project = "other" },
		"pipeline": func(e *Execution) { e.Pipeline = "other" },
		"trigger":  func(e *Execution) { e.Trigger = TriggerManual },
		"branch":   func(e *Execution) { e.Branch = "main" },
		"commit":   func(e *Execution) { e.Commit = strings.Repeat("b", 40) },
	} {
		moved := e
		mutate(&moved)
		if _, err := s.UpdateExecution(ctx, moved, AnyGeneration); err == nil || !strings.Contains(err.Error(), "cannot change") {
			t.Errorf("changing the %s: %v", name, err)
		}
	}

	e.Status = ExecutionWaiting
	if _, err := s.UpdateExecution(ctx, e, e.Generation); err != nil {
		t.Fatal(err)
	}
	e, _ = s.GetExecution(ctx, "x-1")
	if !e.StartedAt.Equal(started) {
		t.Fatalf("StartedAt moved from %v to %v", started, e.StartedAt)
	}
	e.Status, e.Error = ExecutionFailed, "stage test: 2 of 40 tests failed"
	if _, err := s.UpdateExecution(ctx, e, e.Generation); err != nil {
		t.Fatal(err)
	}
	e, _ = s.GetExecution(ctx, "x-1")
	if e.FinishedAt == nil || e.FinishedAt.Before(e.StartedAt) || e.Error == "" {
		t.Fatalf("failed: %+v", e)
	}
	finished := *e.FinishedAt
	e.Stages = json.RawMessage(`{"note":"annotated after the fact"}`)
	if _, err := s.UpdateExecution(ctx, e, e.Generation); err != nil {
		t.Fatal(err)
	}
	if e, _ = s.GetExecution(ctx, "x-1"); e.FinishedAt == nil || !e.FinishedAt.Equal(finished) {
		t.Fatalf("FinishedAt = %v, want %v kept", e.FinishedAt, finished)
	}
	// Resumed in place: not finished any more, started when it first ran.
	e.Status = ExecutionRunning
	if _, err := s.UpdateExecution(ctx, e, e.Generation); err != nil {
		t.Fatal(err)
	}
	if e, _ = s.GetExecution(ctx, "x-1"); e.FinishedAt != nil || !e.StartedAt.Equal(started) {
		t.Fatalf("resumed: StartedAt %v, FinishedAt %v", e.StartedAt, e.FinishedAt)
	}
	missing := testExecution("x-missing")
	missing.Status = ExecutionRunning
	if _, err := s.UpdateExecution(ctx, missing, AnyGeneration); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of missing execution: %v, want ErrNotFound", err)
	}
	// Cancelled while queued: finished, never started.
	q := testExecution("x-2")
	q.Status = ExecutionCancelled
	if err := s.CreateExecution(ctx, q); err != nil {
		t.Fatal(err)
	}
	if q, _ = s.GetExecution(ctx, "x-2"); q.FinishedAt == nil || !q.StartedAt.IsZero() {
		t.Fatalf("cancelled in the queue: StartedAt %v, FinishedAt %v", q.StartedAt, q.FinishedAt)
	}
}

func TestListAndActiveExecutions(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	for i, x := range []struct{ id, project, branch, status string }{
		{"x-1", "bluemed", "develop", ExecutionSucceeded},
		{"x-2", "bluemed", "main", ExecutionWaiting},
		{"x-3", "other", "main", ExecutionRunning},
		{"x-4", "bluemed", "develop", ExecutionSuperseded},
		{"x-5", "bluemed", "develop", ExecutionQueued},
	} {
		e := testExecution(x.id)
		e.Project, e.Branch, e.Status = x.project, x.branch, x.status
		e.CreatedAt = testTime.Add(time.Duration(i) * time.Minute)
		if err := s.CreateExecution(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(es []Execution, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	for _, c := range []struct {
		f    ExecutionFilter
		want []string
	}{
		{ExecutionFilter{}, []string{"x-5", "x-4", "x-3", "x-2", "x-1"}},
		{ExecutionFilter{Project: "bluemed"}, []string{"x-5", "x-4", "x-2", "x-1"}},
		{ExecutionFilter{Project: "bluemed", Branch: "develop", Limit: 2}, []string{"x-5", "x-4"}},
		{ExecutionFilter{Status: ExecutionWaiting}, []string{"x-2"}},
		{ExecutionFilter{Pipeline: "default", Branch: "main"}, []string{"x-3", "x-2"}},
		{ExecutionFilter{Project: "nope"}, nil},
	} {
		if got := ids(s.FindExecutions(ctx, c.f)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("FindExecutions(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
	if got := ids(s.ListExecutions(ctx, "bluemed", 3)); !reflect.DeepEqual(got, []string{"x-5", "x-4", "x-2"}) {
		t.Errorf("ListExecutions(bluemed, 3) = %v", got)
	}
	if got := ids(s.ActiveExecutions(ctx, "bluemed")); !reflect.DeepEqual(got, []string{"x-2", "x-5"}) {
		t.Errorf("ActiveExecutions(bluemed) = %v, want oldest first [x-2 x-5]", got)
	}
	if got := ids(s.ActiveExecutions(ctx, "")); !reflect.DeepEqual(got, []string{"x-2", "x-3", "x-5"}) {
		t.Errorf("ActiveExecutions(all) = %v", got)
	}
}

// An executor step writes the execution, its log and its approval together,
// or none of them.
func TestExecutionStepIsAtomic(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	if err := s.CreateExecution(ctx, testExecution("x-1")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := s.Tx(ctx, func(tx *Tx) error {
		e, err := tx.GetExecution(ctx, "x-1")
		if err != nil {
			return err
		}
		e.Status = ExecutionWaiting
		if _, err := tx.UpdateExecution(ctx, e, e.Generation); err != nil {
			return err
		}
		if err := tx.AppendLog(ctx, "x-1", "approve", []string{"waiting for approval"}); err != nil {
			return err
		}
		if err := tx.RequestApproval(ctx, Approval{Execution: "x-1", Stage: "production", Action: "approve",
			Expires: time.Now().Add(time.Hour)}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx = %v, want boom", err)
	}
	if e, _ := s.GetExecution(ctx, "x-1"); e.Status != ExecutionQueued || e.Generation != 1 {
		t.Errorf("execution survived the rollback: %+v", e)
	}
	if logs, _ := s.ListLogs(ctx, "x-1", "", 0, 0); len(logs) != 0 {
		t.Errorf("log lines survived the rollback: %v", logs)
	}
	if _, err := s.GetApproval(ctx, "x-1", "approve"); !errors.Is(err, ErrNotFound) {
		t.Errorf("approval survived the rollback: %v", err)
	}
}

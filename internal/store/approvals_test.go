package store

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func openWithExecutions(t *testing.T, ids ...string) *Store {
	t.Helper()
	s := openTest(t)
	for _, id := range ids {
		e := testExecution(id)
		e.Status = ExecutionWaiting
		if err := s.CreateExecution(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func requestApproval(t *testing.T, s *Store, execID string, expires time.Time) Approval {
	t.Helper()
	err := s.RequestApproval(t.Context(), Approval{Execution: execID, Stage: "production", Action: "approve",
		Expires: expires, Evidence: json.RawMessage(`{"staging_p95_ms":12}`)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.GetApproval(t.Context(), execID, "approve")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestApprovalDecidedOnce(t *testing.T) {
	s, ctx := openWithExecutions(t, "x-1"), t.Context()
	expires := time.Now().Add(7 * 24 * time.Hour)
	a := requestApproval(t, s, "x-1", expires)
	if a.Status != ApprovalPending || time.Since(a.RequestedAt) > time.Hour || !a.Expires.Equal(expires) ||
		string(a.Evidence) != `{"staging_p95_ms":12}` || a.DecidedAt != nil {
		t.Fatalf("requested: %+v", a)
	}
	// Asking again (a resumed executor) returns the stored one unchanged.
	err := s.RequestApproval(ctx, Approval{Execution: "x-1", Stage: "production", Action: "approve",
		Expires: expires.Add(time.Hour)})
	again, _ := s.GetApproval(ctx, "x-1", "approve")
	if err != nil || !reflect.DeepEqual(again, a) {
		t.Fatalf("second request = %+v, %v; want %+v", again, err, a)
	}
	if _, err := s.DecideApproval(ctx, "x-1", "approve", true, " ", ""); err == nil || !strings.Contains(err.Error(), "who decides") {
		t.Fatalf("decision without a name: %v", err)
	}
	got, err := s.DecideApproval(ctx, "x-1", "approve", true, "ada", "staging looks good")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != ApprovalApproved || got.DecidedBy != "ada" || got.Comment != "staging looks good" || got.DecidedAt == nil {
		t.Fatalf("approved: %+v", got)
	}
	if stored, _ := s.GetApproval(ctx, "x-1", "approve"); !reflect.DeepEqual(stored, got) {
		t.Fatalf("stored %+v, returned %+v", stored, got)
	}
	_, err = s.DecideApproval(ctx, "x-1", "approve", false, "bob", "too late")
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "already approved by ada") {
		t.Fatalf("second decision: %v, want ErrConflict naming the first", err)
	}
	t.Log(err)
	err = s.RequestApproval(ctx, Approval{Execution: "x-1", Stage: "production", Action: "approve", Expires: expires})
	if again, _ := s.GetApproval(ctx, "x-1", "approve"); err != nil || again.Status != ApprovalApproved {
		t.Fatalf("request after the decision reset it: %+v", again)
	}
	if _, err := s.DecideApproval(ctx, "x-1", "other", true, "ada", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deciding an approval never requested: %v, want ErrNotFound", err)
	}
	if as, err := s.ListApprovals(ctx, "x-1"); err != nil || len(as) != 1 || as[0].Status != ApprovalApproved {
		t.Fatalf("ListApprovals = %+v, %v", as, err)
	}
	b, _ := json.Marshal(got)
	for _, key := range []string{`"execution":"x-1"`, `"status":"approved"`, `"decided_by":"ada"`, `"evidence":{`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
}

func TestApprovalRefusals(t *testing.T) {
	s, ctx := openWithExecutions(t, "x-1"), t.Context()
	hour := time.Now().Add(time.Hour)
	for name, a := range map[string]Approval{
		"no execution":   {Action: "approve", Expires: hour},
		"no action":      {Execution: "x-1", Expires: hour},
		"no deadline":    {Execution: "x-1", Action: "approve"},
		"past deadline":  {Execution: "x-1", Action: "approve", Expires: time.Now().Add(-time.Minute)},
		"bad evidence":   {Execution: "x-1", Action: "approve", Expires: hour, Evidence: json.RawMessage("{")},
		"unknown exec":   {Execution: "x-nope", Action: "approve", Expires: hour},
		"finished exec.": {Execution: "x-done", Action: "approve", Expires: hour},
	} {
		if name == "finished exec." {
			e := testExecution("x-done")
			e.Status = ExecutionSucceeded
			if err := s.CreateExecution(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RequestApproval(ctx, a); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The execution was cancelled while it waited: nothing to approve.
	requestApproval(t, s, "x-1", hour)
	e, _ := s.GetExecution(ctx, "x-1")
	e.Status = ExecutionCancelled
	if _, err := s.UpdateExecution(ctx, e, e.Generation); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DecideApproval(ctx, "x-1", "approve", true, "ada", ""); !errors.Is(err, ErrConflict) ||
		!strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("approving a cancelled execution: %v", err)
	}
	if p, _ := s.PendingApprovals(ctx, ""); len(p) != 0 {
		t.Fatalf("PendingApprovals lists the cancelled execution's gate: %+v", p)
	}
}

func TestApprovalExpiry(t *testing.T) {
	s, ctx := openWithExecutions(t, "x-1", "x-2", "x-3"), t.Context()
	requestApproval(t, s, "x-1", time.Now().Add(50*time.Millisecond))
	requestApproval(t, s, "x-2", time.Now().Add(time.Hour))
	requestApproval(t, s, "x-3", time.Now().Add(50*time.Millisecond))
	time.Sleep(100 * time.Millisecond)
	_, err := s.DecideApproval(ctx, "x-1", "approve", true, "ada", "")
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("deciding after the deadline: %v", err)
	}
	// The expired mark is kept although the decision failed.
	if a, _ := s.GetApproval(ctx, "x-1", "approve"); a.Status != ApprovalExpired || a.DecidedAt == nil || a.DecidedBy != "" {
		t.Fatalf("after a late decision: %+v", a)
	}
	expired, err := s.ExpireApprovals(ctx, time.Now())
	if err != nil || len(expired) != 1 || expired[0].Execution != "x-3" || expired[0].Status != ApprovalExpired {
		t.Fatalf("ExpireApprovals = %+v, %v; want x-3", expired, err)
	}
	if again, _ := s.ExpireApprovals(ctx, time.Now()); len(again) != 0 {
		t.Fatalf("second ExpireApprovals = %+v", again)
	}
	p, err := s.PendingApprovals(ctx, "bluemed")
	if err != nil || len(p) != 1 || p[0].Execution != "x-2" {
		t.Fatalf("PendingApprovals = %+v, %v; want x-2 only", p, err)
	}
	if p, _ := s.PendingApprovals(ctx, "other"); len(p) != 0 {
		t.Fatalf("PendingApprovals(other project) = %+v", p)
	}
}

// The CLI of two people (two processes) decide the same gate at once:
// exactly one decision wins, the other is told.
func TestConcurrentDecisions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cutover.db")
	ctx := t.Context()
	var stores []*Store
	for range 2 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	const gates = 10
	for i := range gates {
		e := testExecution("x-" + string(rune('a'+i)))
		e.Status = ExecutionWaiting
		if err := stores[0].CreateExecution(ctx, e); err != nil {
			t.Fatal(err)
		}
		requestApproval(t, stores[0], e.ID, time.Now().Add(time.Hour))
	}
	var wg sync.WaitGroup
	results := make([][]error, len(stores)*2)
	for w := range results {
		s := stores[w%2]
		wg.Go(func() {
			for i := range gates {
				_, err := s.DecideApproval(ctx, "x-"+string(rune('a'+i)), "approve", w%2 == 0, "user", "")
				results[w] = append(results[w], err)
			}
		})
	}
	wg.Wait()
	for i := range gates {
		won := 0
		for w := range results {
			switch err := results[w][i]; {
			case err == nil:
				won++
			case !errors.Is(err, ErrConflict):
				t.Errorf("gate %d, decider %d: %v", i, w, err)
			}
		}
		if won != 1 {
			t.Errorf("gate %d decided %d times", i, won)
		}
	}
}

func TestExecutionLogs(t *testing.T) {
	s, ctx := openWithExecutions(t, "x-1", "x-2"), t.Context()
	if err := s.AppendLog(ctx, "x-1", "build-backend", []string{"go vet ./...", "go test ./..."}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLog(ctx, "x-2", "build-backend", []string{"other execution"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLog(ctx, "x-1", "build-frontend", []string{"npm ci", "", "npm run build"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLog(ctx, "x-1", "build-frontend", nil); err != nil {
		t.Fatal(err)
	}
	lines := func(execID, action string, after int64, limit int) []string {
		t.Helper()
		ls, err := s.ListLogs(ctx, execID, action, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range ls {
			if time.Since(l.Time) > time.Hour {
				t.Errorf("line %d has time %v", l.Seq, l.Time)
			}
			out = append(out, strings.Join([]string{string(rune('0' + l.Seq)), l.Action, l.Line}, " "))
		}
		return out
	}
	for _, c := range []struct {
		exec, action string
		after        int64
		limit        int
		want         []string
	}{
		{"x-1", "", 0, 0, []string{"1 build-backend go vet ./...", "2 build-backend go test ./...",
			"3 build-frontend npm ci", "4 build-frontend ", "5 build-frontend npm run build"}},
		{"x-1", "build-frontend", 0, 2, []string{"3 build-frontend npm ci", "4 build-frontend "}},
		{"x-1", "", 4, 0, []string{"5 build-frontend npm run build"}},
		{"x-1", "", 5, 0, nil},
		{"x-2", "", 0, 0, []string{"1 build-backend other execution"}},
		{"x-nope", "", 0, 0, nil},
	} {
		if got := lines(c.exec, c.action, c.after, c.limit); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ListLogs(%s, %q, %d, %d) = %q, want %q", c.exec, c.action, c.after, c.limit, got, c.want)
		}
	}
	if err := s.AppendLog(ctx, "x-nope", "build", []string{"x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("log of an unknown execution: %v, want ErrNotFound", err)
	}
	if err := s.AppendLog(ctx, "x-1", "", []string{"x"}); err == nil {
		t.Error("log line without an action accepted")
	}
}

// Actions running in parallel append to one execution's log from two
// processes while `cutover logs --follow` tails it: the follower sees every
// line once, in order.
func TestLogsFollowedWhileWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cutover.db")
	ctx := t.Context()
	var stores []*Store
	for range 2 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	e := testExecution("x-1")
	e.Status = ExecutionRunning
	if err := stores[0].CreateExecution(ctx, e); err != nil {
		t.Fatal(err)
	}
	const writers, batches, perBatch = 4, 20, 3
	total := int64(writers * batches * perBatch)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		s := stores[w%2]
		wg.Go(func() {
			for range batches {
				if err := s.AppendLog(ctx, "x-1", "action-"+string(rune('a'+w)), []string{"a", "b", "c"}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	followed := make(chan error, 1)
	go func() {
		var last int64
		deadline := time.Now().Add(30 * time.Second)
		for last < total && time.Now().Before(deadline) {
			ls, err := stores[1].ListLogs(ctx, "x-1", "", last, 7)
			if err != nil {
				followed <- err
				return
			}
			for _, l := range ls {
				if l.Seq != last+1 {
					followed <- errors.New("follower skipped a line")
					return
				}
				last = l.Seq
			}
			if len(ls) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		if last != total {
			followed <- errors.New("follower did not see every line within 30s")
			return
		}
		followed <- nil
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	// Each batch stays contiguous: one AppendLog is one transaction.
	ls, _ := stores[0].ListLogs(ctx, "x-1", "", 0, 0)
	for i := 0; i < len(ls); i += perBatch {
		if ls[i].Line != "a" || ls[i+1].Line != "b" || ls[i+2].Line != "c" || ls[i].Action != ls[i+2].Action {
			t.Fatalf("batch at seq %d interleaved: %+v", ls[i].Seq, ls[i:i+perBatch])
		}
	}
}

// Two stages may each hold an approval action of the same name (the default
// pipeline's "approve" for two environments of one branch): each is its own
// approval, and deciding one decides nothing of the other. Approvals stored
// before they were keyed by stage keep their decisions.
func TestApprovalsOfTheSameNameInTwoStagesAreTwo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cutover.db")
	all := migrations
	t.Cleanup(func() { migrations = all })
	byStage := slices.IndexFunc(all, func(m string) bool { return strings.Contains(m, "CREATE TABLE approvals_by_stage") })
	if byStage < 0 {
		t.Fatal("no migration keys approvals by stage")
	}
	migrations = all[:byStage] // the schema before approvals were keyed by stage
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	e := testExecution("x-1")
	e.Status = ExecutionWaiting
	expires := time.Now().Add(time.Hour)
	if err := s.CreateExecution(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestApproval(t.Context(), Approval{Execution: "x-1", Stage: "deploy-staging", Action: "approve", Expires: expires}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DecideApproval(t.Context(), "x-1", "approve", true, "bob", "staging ok"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	migrations = all
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if a, err := s.StageApproval(ctx, "x-1", "deploy-staging", "approve"); err != nil || a.Status != ApprovalApproved || a.DecidedBy != "bob" {
		t.Fatalf("staging's approval after the migration: %+v %v", a, err)
	}
	if err := s.RequestApproval(ctx, Approval{Execution: "x-1", Stage: "deploy-production", Action: "approve", Expires: expires}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.StageApproval(ctx, "x-1", "deploy-production", "approve"); err != nil || a.Status != ApprovalPending {
		t.Fatalf("production's approval: %+v %v, want pending", a, err)
	}
	got, err := s.DecideApproval(ctx, "x-1", "approve", true, "alice", "production ok")
	if err != nil || got.Stage != "deploy-production" || got.DecidedBy != "alice" {
		t.Fatalf("decision: %+v %v, want production's by alice", got, err)
	}
	if a, _ := s.StageApproval(ctx, "x-1", "deploy-staging", "approve"); a.DecidedBy != "bob" {
		t.Fatalf("staging's approval changed: %+v", a)
	}
	if as, err := s.ListApprovals(ctx, "x-1"); err != nil || len(as) != 2 {
		t.Fatalf("approvals %+v %v", as, err)
	}
}

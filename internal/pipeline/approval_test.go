package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// A main-branch pipeline that waits for an approval before deploying.
func approvalRepo(t *testing.T, project, timeout string) (string, string) {
	repo, _ := gitRepo(t, project)
	cfg, _ := os.ReadFile(filepath.Join(repo, "cutover.yaml"))
	y := strings.Replace(string(cfg), "staging: { branch: develop, listen: { port: 18080 } }",
		"staging: { branch: develop, listen: { port: 18080 } }\n  production: { branch: main, promote_from: staging, listen: { port: 18090 } }", 1)
	y += `    - name: production
      branches: [main]
      actions:
        - { name: approve, kind: approval, environment: production, timeout: ` + timeout + ` }
        - { name: deploy, kind: deploy, environment: production, run_order: 2 }
`
	_ = os.WriteFile(filepath.Join(repo, "cutover.yaml"), []byte(y), 0o644)
	testenv.Git(t, repo, "checkout", "-q", "-b", "main")
	testenv.Git(t, repo, "commit", "-qam", "production stage")
	return repo, testenv.Git(t, repo, "rev-parse", "HEAD")
}

func waitPending(t *testing.T, st *store.Store, project string) store.Approval {
	t.Helper()
	for i := 0; i < 300; i++ {
		if ps, err := st.PendingApprovals(context.Background(), project); err == nil && len(ps) == 1 {
			return ps[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no approval was requested")
	return store.Approval{}
}

func TestApprovalGatesProductionWithEvidence(t *testing.T) {
	e, calls, out := newEngine(t)
	project := "ap-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	repo, commit := approvalRepo(t, project, "1m")
	done := make(chan store.Execution, 1)
	go func() {
		x, err := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "main", Commit: commit})
		if err != nil {
			t.Error(err)
		}
		done <- x
	}()
	ap := waitPending(t, e.Store, project)
	var ev Evidence
	if err := json.Unmarshal(ap.Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Commit != commit || ev.Message != "production stage" || len(ev.ChangedFiles) != 1 || ev.Images["hello"] == "" {
		t.Fatalf("evidence %+v", ev)
	}
	x, _ := e.Store.GetExecution(context.Background(), ap.Execution)
	if x.Status != "waiting" || len(*calls) != 0 {
		t.Fatalf("before the decision: status %s, deploys %v", x.Status, *calls)
	}
	if _, err := e.Store.DecideApproval(context.Background(), ap.Execution, ap.Action, true, "alice", "staging looks good"); err != nil {
		t.Fatal(err)
	}
	x = <-done
	if x.Status != "succeeded" || len(*calls) != 1 || (*calls)[0].env != "production" {
		t.Fatalf("after approval: %s %s, deploys %v\n%s", x.Status, x.Error, *calls, out)
	}
	if !strings.Contains(string(x.Stages), "approved by alice: staging looks good") {
		t.Fatalf("the decision is not recorded in the stages: %s", x.Stages)
	}
}

func TestRejectionAndTimeoutFailTheExecution(t *testing.T) {
	e, calls, _ := newEngine(t)
	project := "rj-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	repo, commit := approvalRepo(t, project, "1m")
	done := make(chan store.Execution, 1)
	go func() {
		x, _ := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "main", Commit: commit})
		done <- x
	}()
	ap := waitPending(t, e.Store, project)
	if _, err := e.Store.DecideApproval(context.Background(), ap.Execution, ap.Action, false, "bob", "p95 too high"); err != nil {
		t.Fatal(err)
	}
	x := <-done
	if x.Status != "failed" || !strings.Contains(x.Error, "rejected by bob: p95 too high") || len(*calls) != 0 {
		t.Fatalf("rejected: %s %q deploys %v", x.Status, x.Error, *calls)
	}

	repo2, commit2 := approvalRepo(t, project, "300ms")
	x, err := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo2, Branch: "main", Commit: commit2})
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != "failed" || !strings.Contains(x.Error, "timed out") || len(*calls) != 0 {
		t.Fatalf("timeout: %s %q", x.Status, x.Error)
	}
}

func TestCancelStopsAWaitingExecution(t *testing.T) {
	e, calls, _ := newEngine(t)
	project := "cx-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	repo, commit := approvalRepo(t, project, "1m")
	done := make(chan store.Execution, 1)
	go func() {
		x, _ := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "main", Commit: commit})
		done <- x
	}()
	ap := waitPending(t, e.Store, project)
	if _, err := e.Store.AppendEvent(context.Background(), store.Event{Project: project, Environment: EventScope(ap.Execution), Kind: CancelEvent, Message: "by test"}); err != nil {
		t.Fatal(err)
	}
	select {
	case x := <-done:
		if x.Status != "cancelled" || len(*calls) != 0 {
			t.Fatalf("cancel: %s %q", x.Status, x.Error)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end the execution")
	}
}

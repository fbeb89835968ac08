package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// enter starts w's wait for key in the background and reports its result.
func enter(l *stageLocks, ctx context.Context, key string, w *stageWaiter, supersede bool) (waiting <-chan struct{}, result <-chan error) {
	wc, rc := make(chan struct{}), make(chan error, 1)
	go func() {
		rc <- l.acquire(ctx, key, w, supersede, func(string) { close(wc) })
	}()
	return wc, rc
}

func mustWait(t *testing.T, what string, waiting <-chan struct{}, result <-chan error) {
	t.Helper()
	select {
	case <-waiting:
	case err := <-result:
		t.Fatalf("%s entered a taken stage (err %v)", what, err)
	case <-time.After(2 * time.Second):
		t.Fatalf("%s neither waits nor enters", what)
	}
}

func outcome(t *testing.T, what string, rc <-chan error) error {
	t.Helper()
	select {
	case err := <-rc:
		return err
	case <-time.After(2 * time.Second):
		t.Fatalf("%s is still waiting", what)
		return nil
	}
}

func TestStageLocksSupersedeOnlyTheSameKindAndBranch(t *testing.T) {
	var l stageLocks
	ctx := context.Background()
	holder := &stageWaiter{exec: "x-main-1", kind: TriggerPush, branch: "main"}
	if err := l.acquire(ctx, "p/production", holder, true, nil); err != nil {
		t.Fatal(err)
	}
	// Other stages are free: a develop run builds while main holds production.
	if err := l.acquire(ctx, "p/build", &stageWaiter{exec: "x-dev", kind: TriggerPush, branch: "develop"}, true, nil); err != nil {
		t.Fatal(err)
	}
	w2, r2 := enter(&l, ctx, "p/production", &stageWaiter{exec: "x-main-2", kind: TriggerPush, branch: "main", commit: "2222222aaa"}, true)
	mustWait(t, "main 2", w2, r2)
	// A pull request whose head branch is main, and a manual run of main, do not supersede the push.
	wp, rp := enter(&l, ctx, "p/production", &stageWaiter{exec: "x-pr", kind: TriggerPullRequest, branch: "main"}, true)
	mustWait(t, "the pull request", wp, rp)
	wm, rm := enter(&l, ctx, "p/production", &stageWaiter{exec: "x-manual", kind: TriggerManual, branch: "main"}, true)
	mustWait(t, "the manual run", wm, rm)
	// A newer push of main does.
	w3, r3 := enter(&l, ctx, "p/production", &stageWaiter{exec: "x-main-3", kind: TriggerPush, branch: "main", commit: "3333333bbb"}, true)
	err := outcome(t, "main 2", r2)
	if !errors.Is(err, errCancelled) || !strings.Contains(err.Error(), SupersededPrefix+" 3333333") {
		t.Fatalf("main 2 waiting behind main 1: %v, want superseded by 3333333", err)
	}
	mustWait(t, "main 3", w3, r3)
	// The holder leaves: first come, first served among those left.
	l.release("p/production", "x-main-1")
	if err := outcome(t, "the pull request", rp); err != nil {
		t.Fatal(err)
	}
	l.release("p/production", "x-pr")
	if err := outcome(t, "the manual run", rm); err != nil {
		t.Fatal(err)
	}
	l.release("p/production", "x-manual")
	if err := outcome(t, "main 3", r3); err != nil {
		t.Fatal(err)
	}
}

func TestStageLocksQueuedModeKeepsEveryRunAndACancelledWaiterLeaves(t *testing.T) {
	var l stageLocks
	ctx := context.Background()
	if err := l.acquire(ctx, "p/build", &stageWaiter{exec: "x-1", kind: TriggerPush, branch: "main"}, false, nil); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancelCause(ctx)
	w2, r2 := enter(&l, cctx, "p/build", &stageWaiter{exec: "x-2", kind: TriggerPush, branch: "main"}, false)
	mustWait(t, "x-2", w2, r2)
	w3, r3 := enter(&l, ctx, "p/build", &stageWaiter{exec: "x-3", kind: TriggerPush, branch: "main"}, false)
	mustWait(t, "x-3", w3, r3)
	cancel(errors.Join(errCancelled, errors.New("by `cutover cancel`")))
	if err := outcome(t, "x-2", r2); !errors.Is(err, errCancelled) || !strings.Contains(err.Error(), "cutover cancel") {
		t.Fatalf("cancelled while waiting: %v", err)
	}
	l.release("p/build", "x-1")
	if err := outcome(t, "x-3", r3); err != nil {
		t.Fatalf("queued mode: x-3 after x-1 left: %v", err)
	}
	l.release("p/build", "x-3")
	if err := l.acquire(ctx, "p/build", &stageWaiter{exec: "x-4"}, false, func(h string) { t.Fatalf("a free stage is held by %s", h) }); err != nil {
		t.Fatal(err)
	}
}

// Two forks' pull requests from branches of the same name are different
// runs: neither supersedes the other; a newer push to the same one does.
func TestStageLocksKeepTwoPullRequestsOfTheSameBranchName(t *testing.T) {
	var l stageLocks
	ctx := context.Background()
	if err := l.acquire(ctx, "p/build", &stageWaiter{exec: "x-0", kind: TriggerPush, branch: "main"}, true, nil); err != nil {
		t.Fatal(err)
	}
	w5, r5 := enter(&l, ctx, "p/build", &stageWaiter{exec: "x-pr5", kind: TriggerPullRequest, branch: "patch-1", pr: 5}, true)
	mustWait(t, "PR 5", w5, r5)
	w6, r6 := enter(&l, ctx, "p/build", &stageWaiter{exec: "x-pr6", kind: TriggerPullRequest, branch: "patch-1", pr: 6}, true)
	mustWait(t, "PR 6", w6, r6)
	w6b, r6b := enter(&l, ctx, "p/build", &stageWaiter{exec: "x-pr6b", kind: TriggerPullRequest, branch: "patch-1", pr: 6, commit: "6b6b6b6b"}, true)
	if err := outcome(t, "PR 6", r6); !errors.Is(err, errCancelled) || !strings.Contains(err.Error(), SupersededPrefix) {
		t.Fatalf("PR 6 behind its own newer push: %v, want superseded", err)
	}
	mustWait(t, "PR 6 (newer)", w6b, r6b)
	l.release("p/build", "x-0")
	if err := outcome(t, "PR 5", r5); err != nil {
		t.Fatalf("PR 5 was superseded by another pull request of the same branch name: %v", err)
	}
	l.release("p/build", "x-pr5")
	if err := outcome(t, "PR 6 (newer)", r6b); err != nil {
		t.Fatal(err)
	}
	if !SameRun(Trigger{Kind: TriggerPush, Branch: "main"}, Trigger{Kind: TriggerPush, Branch: "main", Commit: "x"}) ||
		SameRun(Trigger{Kind: TriggerPush, Branch: "main"}, Trigger{Kind: TriggerPullRequest, Branch: "main", PR: 1}) ||
		SameRun(Trigger{Kind: TriggerPullRequest, Branch: "main", PR: 1}, Trigger{Kind: TriggerPullRequest, Branch: "main", PR: 2}) {
		t.Fatal("SameRun does not tell runs apart by kind, branch and pull request")
	}
}

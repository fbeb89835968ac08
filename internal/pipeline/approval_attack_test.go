package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// okListener serves 200 on a free loopback port (an environment's listener
// for the verify action) and returns the port.
func okListener(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

const twoGatesProject = `version: 1
project: %s
services:
  web: { image: "example.invalid/web:1", port: 8080 }
environments:
  staging:
    branch: main
    listen: { port: %d }
    approval: { required: true, approvers: [bob] }
  production:
    branch: main
    promote_from: staging
    listen: { port: %d }
    approval: { required: true, approvers: [alice] }
`

// Staging and production both deploy from main, each behind its own
// approval: bob may approve staging, only alice production. The default
// pipeline names both approval actions "approve", and the store kept one
// approval per execution and action name: production's request found
// staging's, already approved by bob, and went on to deploy production.
// bob's approval of staging approved production.
func TestAttackApprovingOneGateApprovesAnotherOfTheSameName(t *testing.T) {
	ctx := context.Background()
	project := "two-gates"
	yaml := fmt.Sprintf(twoGatesProject, project, okListener(t), okListener(t))
	repo, _ := testenv.GitRepo(t, "main", map[string]string{"cutover.yaml": yaml})
	commit := testenv.Git(t, repo, "rev-parse", "HEAD")
	cfg, err := config.Parse("cutover.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	e, deployed := recordingEngine(t, cfg, func(env, _ string) string { return env })
	st := e.Store
	done := make(chan store.Execution, 1)
	go func() {
		x, err := e.Run(ctx, Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "main", Commit: commit})
		if err != nil {
			t.Error(err)
		}
		done <- x
	}()
	bob := auth.Identity{Name: "bob", Role: auth.RoleApprover, Via: auth.ViaAPI}
	alice := auth.Identity{Name: "alice", Role: auth.RoleApprover, Via: auth.ViaAPI}

	first := waitPending(t, st, project)
	if first.Stage != "deploy-staging" {
		t.Fatalf("first approval %+v, want staging's", first)
	}
	if _, err := Decide(ctx, st, cfg, bob, first.Execution, true, "staging ok"); err != nil {
		t.Fatal(err)
	}
	// Production must now wait for its own approval, which bob may not give.
	var second store.Approval
	for second.Stage != "deploy-production" {
		select {
		case x := <-done:
			t.Fatalf("the execution ended %s (%s) without production's approval; deployed %v", x.Status, x.Error, deployed())
		case <-time.After(20 * time.Millisecond):
		}
		if ps, err := st.PendingApprovals(ctx, project); err == nil && len(ps) == 1 {
			second = ps[0]
		}
	}
	if _, err := Decide(ctx, st, cfg, bob, first.Execution, true, "me again"); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("bob approving production: %v, want ErrNotAllowed", err)
	}
	if _, err := Decide(ctx, st, cfg, alice, first.Execution, true, "production ok"); err != nil {
		t.Fatal(err)
	}
	x := <-done
	if x.Status != "succeeded" || deployed() != "[staging production]" {
		t.Fatalf("after alice's approval: %s %s, deployed %v", x.Status, x.Error, deployed())
	}
	as, err := st.ListApprovals(ctx, x.ID)
	if err != nil || len(as) != 2 || as[0].DecidedBy != "bob" || as[1].DecidedBy != "alice" {
		t.Fatalf("approvals %+v %v", as, err)
	}
}

const unguardedProject = `version: 1
project: %s
services:
  web: { image: "example.invalid/web:1", port: 8080 }
environments:
  production:
    branch: main
    listen: { port: %d }
`

// Production's approval was added to main's cutover.yaml after the first
// commit. A deployer (who may trigger a run of a branch's commit, the head or
// an ancestor, but not approve) triggers main's first commit: a trusted
// branch runs its own commit's definition, which has no approval, and the
// deploy action deployed production although the daemon's cutover.yaml
// requires an approval for it. A deployment of an environment whose trusted
// configuration requires an approval needs that approval in the execution.
func TestAttackAnOlderCommitWithoutTheGateDeploysUnapproved(t *testing.T) {
	ctx := context.Background()
	project := "no-gate"
	port := okListener(t)
	old := fmt.Sprintf(unguardedProject, project, port)
	repo, _ := testenv.GitRepo(t, "main", map[string]string{"cutover.yaml": old})
	first := testenv.Git(t, repo, "rev-parse", "HEAD")
	guarded := old + "    approval: { required: true, approvers: [alice] }\n"
	testenv.Replace(t, filepath.Join(repo, "cutover.yaml"), old, guarded)
	testenv.Git(t, repo, "commit", "-qam", "production needs alice's approval")
	head := testenv.Git(t, repo, "rev-parse", "HEAD")
	cfg, err := config.Parse("cutover.yaml", []byte(guarded))
	if err != nil {
		t.Fatal(err)
	}
	e, deployed := recordingEngine(t, cfg, func(env, source string) string { return env + " " + source })
	st := e.Store
	x, err := e.Run(ctx, Trigger{Kind: TriggerManual, Project: project, Repo: repo, Branch: "main", Commit: first, Author: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	got := deployed()
	if got != "[]" || x.Status != "failed" {
		t.Fatalf("the first commit, never approved, ran %s (%s) and deployed %s", x.Status, x.Error, got)
	}
	t.Log(x.Error)

	// The head's own definition asks alice, and deploys once she approved.
	done := make(chan store.Execution, 1)
	go func() {
		y, err := e.Run(ctx, Trigger{Kind: TriggerManual, Project: project, Repo: repo, Branch: "main", Commit: head})
		if err != nil {
			t.Error(err)
		}
		done <- y
	}()
	ap := waitPending(t, st, project)
	if _, err := Decide(ctx, st, cfg, auth.Identity{Name: "alice", Role: auth.RoleApprover}, ap.Execution, true, "ok"); err != nil {
		t.Fatal(err)
	}
	y := <-done
	if y.Status != "succeeded" || deployed() != "[production "+RevisionSource(head)+"]" {
		t.Fatalf("the approved head: %s %s, deployed %v", y.Status, y.Error, deployed())
	}
}

// recordingEngine is an engine on a store of its own that trusts cfg and
// deploys nothing: each deployment is recorded as record(env, source), and
// deployed lists them so far (as fmt.Sprint prints a slice).
func recordingEngine(t *testing.T, cfg *config.Config, record func(env, source string) string) (e *Engine, deployed func() string) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var mu sync.Mutex
	var got []string
	e = &Engine{Store: st, Home: t.TempDir(), Poll: 20 * time.Millisecond, Trusted: cfg, Getenv: func(string) string { return "" },
		Deploy: func(ctx context.Context, cfg *config.Config, env string, images map[string]string, source string, logf func(string)) (store.Deployment, error) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, record(env, source))
			return store.Deployment{ID: "d-" + env, Status: "succeeded"}, nil
		}}
	return e, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprint(got)
	}
}

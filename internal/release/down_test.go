package release_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// `cutover down` after a deploy was killed half way: the environment stays
// down. Before, down removed the routes and tasks but left the killed
// deployment in progress, and the next `cutover status` reconciled it:
// rolled it back, starting the original set again and routing production
// to it, so the environment served again after `down`.
func TestDownAfterAKilledDeployStaysDown(t *testing.T) {
	p := newProject(t, `    strategy: { type: blue_green, bake: 1h, termination_wait: 0s }`)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The first deployment serves; the second is interrupted in its bake,
	// as by a kill: its record stays in progress for the next command.
	first := p.deployPromotingAt(ctx, "Baking", func() {})
	for len(p.phase) > 0 {
		<-p.phase
	}
	dctx, kill := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := p.m.Deploy(dctx, "production", release.DeployOptions{Timeout: time.Minute})
		done <- err
	}()
	for ph := ""; ph != "Baking"; {
		select {
		case ph = <-p.phase:
		case err := <-done:
			t.Fatalf("the second deployment ended before its bake: %v", err)
		case <-ctx.Done():
			t.Fatal("no Baking phase")
		}
	}
	kill()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("interrupted deploy: %v", err)
	}
	left, err := p.m.Store.ActiveDeployment(ctx, p.m.Config.Project, "production")
	if err != nil {
		t.Fatalf("the interrupted deployment is not in progress: %v", err)
	}

	if _, err := p.m.Down(ctx, "production"); err != nil {
		t.Fatalf("down: %v", err)
	}
	// What `cutover status` does first.
	if err := p.m.Reconcile(ctx, "production"); err != nil {
		t.Fatalf("reconcile after down: %v", err)
	}
	if d, err := p.m.Store.ActiveDeployment(ctx, p.m.Config.Project, "production"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after down, deployment %s is still in progress (%v)", d.ID, err)
	}
	got, err := p.m.Store.GetDeployment(ctx, left.ID)
	if err != nil || got.Status != store.DeploymentStopped || !strings.Contains(got.Reason, "cutover down") {
		t.Errorf("the killed deployment after down: %s %q (%v), want stopped, naming `cutover down`", got.Status, got.Reason, err)
	}
	rt, err := docker.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if tasks, err := rt.ListTasks(ctx, docker.Labels{Project: p.m.Config.Project, Environment: "production"}); err != nil || len(tasks) != 0 {
		t.Errorf("after down and status, %d tasks run (%v), want none; revision %s came back", len(tasks), err, first.Revision)
	}
	if st, err := p.m.Store.GetEnvState(ctx, p.m.Config.Project, "production"); err != nil || st.Status != "down" {
		t.Errorf("environment state after down and status: %+v (%v), want down", st, err)
	}
}

// `cutover down` while the load balancer is stopped takes the
// environment's routes out of its saved state too, and leaves it stopped.
// Before, the routes stayed in state.json: the next proxy started listened
// on the environment's ports again, answering 503 for the removed tasks,
// while status said down.
func TestDownWithTheProxyStoppedRemovesItsSavedRoutes(t *testing.T) {
	p := newProject(t, quick+fmt.Sprintf("\n  other:\n    listen: { port: %d }\n    strategy: { type: blue_green, termination_wait: 0s }", testenv.FreePort(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for _, env := range []string{"production", "other"} {
		if _, err := p.m.Deploy(ctx, env, release.DeployOptions{Timeout: time.Minute}); err != nil {
			t.Fatalf("deploy %s: %v", env, err)
		}
	}
	if err := release.StopProxy(ctx, p.m.Home, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := p.m.Down(ctx, "production"); err != nil {
		t.Fatalf("down: %v", err)
	}
	saved, err := proxy.SavedState(p.m.Home)
	if err != nil {
		t.Fatal(err)
	}
	prod := p.m.Config.Project + ".production/"
	for _, l := range saved.Listeners {
		if strings.HasPrefix(l.Name, prod) {
			t.Errorf("after down the proxy's saved state still routes production: %+v", l)
		}
	}
	if len(saved.Listeners) == 0 {
		t.Errorf("down of production took the other environment's routes out too: %+v", saved)
	}
	// The other environment's listeners, opened by the proxy down started,
	// must not stay served: the load balancer was stopped before.
	if _, err := proxy.NewClient(p.m.Home).Ping(ctx); err == nil {
		t.Errorf("down left a load balancer running that was stopped before it")
	}
}

package pipeline

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// A daemon killed while a command ran in a container (every command of a
// pull request does) leaves that container running; the next start's
// recovery removes it, and only it.
func TestRecoverRemovesTheContainersOfTheDeadRunsCommands(t *testing.T) {
	testenv.RequireDocker(t)
	ctx := context.Background()
	rt := dockerRuntime(t)
	image := busyboxImage(t, rt)
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	x := store.Execution{ID: "x-dead-owner", Project: "rc-test", Pipeline: "main", Trigger: TriggerPullRequest,
		Branch: "feature", Commit: "0123456789012345678901234567890123456789", Status: store.ExecutionRunning,
		Variables: recordedVars(Trigger{Kind: TriggerPullRequest, Repo: "/nonexistent", Branch: "feature"})}
	if err := st.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	start := func(execution string) string {
		c, err := rt.EngineClient().ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{
			Image: image, Cmd: []string{"sleep", "300"},
			Labels: docker.Labels{Project: "rc-test", Execution: execution}.Map()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = rt.EngineClient().ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		})
		if _, err := rt.EngineClient().ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	left, other := start(x.ID), start("x-someone-else")
	x, _ = st.GetExecution(ctx, x.ID)
	e := &Engine{Store: st, Runtime: rt, Home: t.TempDir()}
	rec, err := e.Recover(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Killed < 1 {
		t.Errorf("recovery killed %d, want the command's container", rec.Killed)
	}
	if _, err := rt.EngineClient().ContainerInspect(ctx, left, client.ContainerInspectOptions{}); err == nil {
		t.Errorf("the dead run's command container %s is still there", left[:12])
	}
	if info, err := rt.EngineClient().ContainerInspect(ctx, other, client.ContainerInspectOptions{}); err != nil || !info.Container.State.Running {
		t.Errorf("another execution's container was touched: %v", err)
	}
}

func recordedVars(t Trigger) []byte {
	trig, _ := json.Marshal(t)
	vars, _ := json.Marshal(map[string]string{TriggerVar: string(trig)})
	return vars
}

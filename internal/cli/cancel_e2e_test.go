package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// `cutover cancel` of an execution whose blue/green deployment is shifting
// production traffic stops it the way `cutover stop` does: within a second
// every request is answered by the original set again, the deployment is
// rolled back, and the execution ends cancelled.
func TestCancelDuringAProductionDeployRestoresTrafficAndEndsCancelled(t *testing.T) {
	p := newPipeRepo(t, "main")
	// Slow shifting, so the cancel lands in the middle of it.
	p.edit("linear: { percent: 50, interval: 2s }", "linear: { percent: 10, interval: 20s }")
	testenv.Git(t, p.clone, "commit", "-qam", "slow traffic shifting")
	url := fmt.Sprintf("http://127.0.0.1:%d/api/health", p.prodPort)
	// The first release has nothing to shift from: it serves at once.
	if x := p.runApproved(); x.Status != "succeeded" {
		t.Fatalf("first execution: %+v", x)
	}
	_, hdr, _ := get(t, url)
	first := hdr.Get("X-Bluemed-Version")
	if first == "" {
		t.Fatal("production does not answer with a version after the first release")
	}

	testenv.Git(t, p.clone, "commit", "-q", "--allow-empty", "-m", "second release")
	cmd := p.command("run", "--kind", "push", "--branch", "main", "-o", "json")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	exited, runErr := background(t, cmd)

	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(p.home, "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var id string
	deadline := time.Now().Add(4 * time.Minute)
	for id == "" {
		xs, _ := st.FindExecutions(ctx, store.ExecutionFilter{Project: p.project, Status: store.ExecutionWaiting})
		if len(xs) > 0 {
			id = xs[0].ID
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second execution never waited for its approval\n%s", errb.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if o, e, err := p.run("approve", id, "--comment", "ok"); err != nil {
		t.Fatalf("cutover approve: %v\n%s%s", err, o, e)
	}
	var d store.Deployment
	for {
		d, err = st.ActiveDeployment(ctx, p.project, "production")
		if err == nil && d.TrafficPercent > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the production deployment never shifted traffic (%+v, %v)\n%s", d, err, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Some requests now reach the new set.
	if o, e, err := p.run("cancel", id); err != nil {
		t.Fatalf("cutover cancel: %v\n%s%s", err, o, e)
	}
	cancelled := time.Now()
	// Traffic is back on the original set when 30 requests in a row are answered by it.
	// What counts is when the streak began: the time its first request was
	// sent (not the streak's length, which grows on a loaded machine).
	streak, began := 0, cancelled
	for streak < 30 {
		if time.Since(cancelled) > 10*time.Second {
			t.Fatalf("10 s after the cancel, production still answers with the new set")
		}
		sent := time.Now()
		if _, h, _ := get(t, url); h.Get("X-Bluemed-Version") == first {
			if streak == 0 {
				began = sent
			}
			streak++
		} else {
			streak = 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	back := began.Sub(cancelled)
	t.Logf("traffic back on the original set %s after the cancel returned", back.Round(10*time.Millisecond))
	if back > time.Second {
		t.Errorf("traffic came back %s after the cancel; want within a second", back)
	}

	select {
	case <-exited:
		var ee *exec.ExitError
		if *runErr != nil && !errors.As(*runErr, &ee) {
			t.Fatalf("cutover run: %v", *runErr)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("cutover run did not end after the cancel\n%s", errb.String())
	}
	var x pipeExecution
	if err := json.Unmarshal([]byte(out.String()), &x); err != nil {
		t.Fatalf("%v: %s\n%s", err, out.String(), errb.String())
	}
	if x.Status != "cancelled" || x.stage("production") != "cancelled" {
		t.Fatalf("after the cancel the execution is %s with production %s (%s)\n%s", x.Status, x.stage("production"), x.Error, errb.String())
	}
	final, err := st.GetDeployment(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.Status != "rolled_back" && final.Status != "stopped" {
		t.Fatalf("deployment %s after the cancel: %s at %d%% (%s)", d.ID, final.Status, final.TrafficPercent, final.Reason)
	}
	t.Logf("deployment %s: %s (%s)", final.ID, final.Status, final.Reason)
}

package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// crashEnv names the database the re-executed test binary writes to until it is killed.
const crashEnv = "CUTOVER_STORE_CRASH_DB"

const crashServices, crashKills = 3, 10

// TestCrashWriterChild is not a test on its own: TestCrashConsistency runs the
// test binary again with only this test and crashEnv set, and kills it.
func TestCrashWriterChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("runs only as the child of TestCrashConsistency")
	}
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if st, err := s.GetEnvState(ctx, "crash", "prod"); err == nil {
		n = st.Generation
	} else if !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	fmt.Println("ready")
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		n++
		err := s.Tx(ctx, func(tx *Tx) error {
			rev := Revision{ID: fmt.Sprintf("r-%d", n), Project: "crash", Environment: "prod", Source: "test",
				Services: map[string]ServiceRevision{}}
			for i := range crashServices {
				rev.Services[fmt.Sprintf("svc%d", i)] = ServiceRevision{Image: fmt.Sprintf("sha256:%d-%d", n, i)}
			}
			if err := tx.CreateRevision(ctx, rev); err != nil {
				return err
			}
			if _, err := tx.PutEnvState(ctx, EnvState{Project: "crash", Environment: "prod", Revision: rev.ID, Status: "up"}, n-1); err != nil {
				return err
			}
			if err := crashStepDeployment(ctx, tx, n); err != nil {
				return err
			}
			if err := crashStepExecution(ctx, tx, n); err != nil {
				return err
			}
			_, err := tx.AppendEvent(ctx, Event{Project: "crash", Environment: "prod", Kind: "deployed", Message: rev.ID})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("committed %d\n", n)
	}
}

// crashStepDeployment writes the deployment step n of the child: the first
// transaction creates it, each later one moves it on by one generation.
func crashStepDeployment(ctx context.Context, tx *Tx, n int64) error {
	data := json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))
	if n == 1 {
		return tx.CreateDeployment(ctx, Deployment{ID: "d-crash", Project: "crash", Environment: "prod",
			Revision: "r-1", Strategy: "rolling", Phase: "step-1", TrafficPercent: 1, Data: data})
	}
	d, err := tx.GetDeployment(ctx, "d-crash")
	if err != nil {
		return err
	}
	d.Phase, d.TrafficPercent, d.Data = fmt.Sprintf("step-%d", n), int(n%101), data
	_, err = tx.UpdateDeployment(ctx, d, n-1)
	return err
}

// crashStepExecution moves execution x-crash on by one generation and
// appends one log line, as an executor does after each action.
func crashStepExecution(ctx context.Context, tx *Tx, n int64) error {
	if n == 1 {
		if err := tx.CreateExecution(ctx, Execution{ID: "x-crash", Project: "crash", Pipeline: "default",
			Trigger: TriggerManual, Status: ExecutionRunning}); err != nil {
			return err
		}
	} else {
		e, err := tx.GetExecution(ctx, "x-crash")
		if err != nil {
			return err
		}
		e.Stages = json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))
		if _, err := tx.UpdateExecution(ctx, e, n-1); err != nil {
			return err
		}
	}
	return tx.AppendLog(ctx, "x-crash", "step", []string{fmt.Sprintf("step %d", n)})
}

// TestCrashConsistency kills a writer at random moments and checks that the
// database keeps whole transactions only, and every one that was acknowledged.
func TestCrashConsistency(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in the child")
	}
	path := filepath.Join(t.TempDir(), "cutover.db")
	var acked int64
	for range crashKills {
		acked = max(acked, crashOnce(t, path, time.Duration(50+rand.IntN(250))*time.Millisecond))
	}
	if acked == 0 {
		t.Fatal("the writer never committed; nothing was tested")
	}

	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var check string
	if err := s.db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	count := func(query string) int64 {
		t.Helper()
		var n int64
		if err := s.db.QueryRow(query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	revs := count(`SELECT count(*) FROM revisions`)
	if revs < acked {
		t.Fatalf("%d revisions stored, but %d commits were acknowledged", revs, acked)
	}
	if n := count(`SELECT count(*) FROM events`); n != revs {
		t.Errorf("%d events for %d revisions; each transaction writes one of each", n, revs)
	}
	if n := count(`SELECT coalesce(max(seq), 0) - count(*) FROM events`); n != 0 {
		t.Errorf("event sequence has %d gaps", n)
	}
	if n := count(`SELECT count(*) FROM revisions r
		WHERE (SELECT count(*) FROM revision_services s WHERE s.revision_id = r.id) != ` + strconv.Itoa(crashServices)); n != 0 {
		t.Errorf("%d revisions without exactly %d services", n, crashServices)
	}
	if n := count(`SELECT count(*) FROM revision_services`); n != revs*crashServices {
		t.Errorf("%d service rows for %d revisions", n, revs)
	}
	st, err := s.GetEnvState(t.Context(), "crash", "prod")
	if err != nil {
		t.Fatal(err)
	}
	if st.Generation != revs || st.Revision != fmt.Sprintf("r-%d", revs) {
		t.Errorf("env state at generation %d, revision %s; want %d, r-%d", st.Generation, st.Revision, revs, revs)
	}
	d, err := s.GetDeployment(t.Context(), "d-crash")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`{"n":%d}`, revs); d.Generation != revs || string(d.Data) != want || d.Phase != fmt.Sprintf("step-%d", revs) {
		t.Errorf("deployment at generation %d, phase %s, data %s; want %d, step-%d, %s", d.Generation, d.Phase, d.Data, revs, revs, want)
	}
	x, err := s.GetExecution(t.Context(), "x-crash")
	if err != nil {
		t.Fatal(err)
	}
	if x.Generation != revs || (revs > 1 && string(x.Stages) != fmt.Sprintf(`{"n":%d}`, revs)) {
		t.Errorf("execution at generation %d, stages %s; want %d", x.Generation, x.Stages, revs)
	}
	logs, err := s.ListLogs(t.Context(), "x-crash", "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(logs)) != revs {
		t.Errorf("%d log lines for %d transactions; each writes one", len(logs), revs)
	} else if last := logs[len(logs)-1]; last.Seq != revs || last.Line != fmt.Sprintf("step %d", revs) {
		t.Errorf("last log line %+v; want seq %d, step %d", last, revs, revs)
	}
	t.Logf("%d transactions committed across %d kills (%d acknowledged)", revs, crashKills, acked)
}

// crashOnce starts the writer, SIGKILLs it after delay once it is writing,
// and returns the last commit it acknowledged.
func crashOnce(t *testing.T, path string, delay time.Duration) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriterChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) // harmless once it is dead

	var last atomic.Int64
	ready, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if line == "ready" {
				close(ready)
			} else if v, ok := strings.CutPrefix(line, "committed "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				last.Store(n)
			}
		}
	}()

	select {
	case <-ready:
	case <-done:
		cmd.Wait()
		t.Fatalf("writer exited before it was ready:\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("writer not ready after 30s")
	}
	time.Sleep(delay)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("writer ended by itself (%v), not by the kill:\n%s", err, stderr.String())
	}
	return last.Load()
}

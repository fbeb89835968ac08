package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// TestServiceLogsFromDocker runs two containers of a service and one of
// another service on the real engine and reads the service's logs: only its
// own containers' lines, the last N with tail, and with follow the lines
// written after the call, until the context ends.
func TestServiceLogsFromDocker(t *testing.T) {
	testenv.RequireDocker(t)
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed for this test (apt-get install busybox-static): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rt, err := docker.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	var b [4]byte
	_, _ = rand.Read(b[:])
	project := "logs" + hex.EncodeToString(b[:])
	t.Cleanup(func() { testenv.RemoveProject(project) })

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"-c\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := rt.Build(ctx, docker.BuildRequest{ContextDir: dir, Tags: []string{"cutover-logs-test/" + project + ":1"}, Labels: map[string]string{docker.LabelProject: project}})
	if err != nil {
		t.Fatal(err)
	}
	start := func(service, color, script string) {
		t.Helper()
		if _, err := rt.StartTask(ctx, docker.TaskSpec{Image: img.ID, Cmd: []string{script}, StopTimeout: time.Second,
			Labels: docker.Labels{Project: project, Environment: "staging", Service: service, Color: color}}); err != nil {
			t.Fatal(err)
		}
	}
	// Each container prints its lines, then a "tick" every 200ms, so that
	// follow has something new to read.
	start("web", "blue", "echo blue-1; echo blue-2; echo blue-3; while true; do echo blue-tick; /bin/busybox sleep 0.2; done")
	start("web", "green", "echo green-1; while true; do /bin/busybox sleep 0.2; echo green-tick; done")
	start("worker", "blue", "while true; do echo worker-line; /bin/busybox sleep 0.2; done")
	time.Sleep(time.Second) // let them write

	var mu sync.Mutex
	var lines []LogLine
	emit := func(l LogLine) error {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, l)
		return nil
	}
	if err := ServiceLogs(ctx, rt, project, "staging", "web", false, 0, time.Time{}, emit); err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, l := range lines {
		if l.Task == "" || (l.Color != "blue" && l.Color != "green") {
			t.Errorf("line without its task and color: %+v", l)
		}
		text = append(text, l.Message)
	}
	all := strings.Join(text, "\n")
	if !strings.Contains(all, "blue-1\nblue-2\nblue-3") || !strings.Contains(all, "green-1") || strings.Contains(all, "worker") {
		t.Fatalf("web's logs:\n%s", all)
	}

	// tail 1: one line per container.
	lines = nil
	if err := ServiceLogs(ctx, rt, project, "staging", "web", false, 1, time.Time{}, emit); err != nil || len(lines) != 2 {
		t.Fatalf("tail 1: %d lines (%v), want one per container", len(lines), err)
	}

	// follow: new lines arrive while it runs; the end of ctx ends it without error.
	lines = nil
	fctx, stop := context.WithTimeout(ctx, 2*time.Second)
	defer stop()
	began := time.Now()
	if err := ServiceLogs(fctx, rt, project, "staging", "web", true, 1, time.Time{}, emit); err != nil {
		t.Fatalf("follow: %v", err)
	}
	if d := time.Since(began); d < 1500*time.Millisecond || d > 10*time.Second {
		t.Errorf("follow returned after %s, want when its context ended (2s)", d)
	}
	ticks := map[string]int{}
	for _, l := range lines {
		if strings.HasSuffix(l.Message, "-tick") {
			ticks[l.Color]++
		}
	}
	if ticks["blue"] < 3 || ticks["green"] < 3 {
		t.Errorf("follow read %v new ticks, want several from each container", ticks)
	}

	if err := ServiceLogs(ctx, rt, project, "production", "web", false, 0, time.Time{}, emit); err == nil || !strings.Contains(err.Error(), "no containers of service web in environment production") {
		t.Errorf("no containers: err = %v", err)
	}
}

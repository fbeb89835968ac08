package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
)

const (
	testProject = "shop"
	testEnv     = "prod"
)

// harness is one environment under test: a real store in t.TempDir(), a
// real parsed configuration, the fake platform and a controller with a 5ms tick.
type harness struct {
	t      *testing.T
	ctx    context.Context
	store  *store.Store
	cfg    *config.Config
	fake   *fakePlatform
	ctrl   *Controller
	mu     sync.Mutex
	events []Event
	// onPhase runs when the driver starts a phase (from the driver's goroutine).
	onPhase func(phase string)
}

// strategyYAML is indented to sit under environments.prod.
func newHarness(t *testing.T, desired int, envYAML string) *harness {
	t.Helper()
	minSettle = 50 * time.Millisecond // production waits 5s; these tests script health directly
	yml := fmt.Sprintf(`version: 1
project: %s
services:
  web:
    image: example/web:1
    port: 8080
    health: { interval: 20ms, timeout: 10ms }
    desired_count: %d
environments:
  %s:
%s
`, testProject, desired, testEnv, envYAML)
	cfg, err := config.Parse("cutover.yaml", []byte(yml))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yml, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h := &harness{t: t, ctx: ctx, store: s, cfg: cfg, fake: newFakePlatform(map[string]int{"web": desired})}
	h.fake.phase = func() string {
		d, err := s.ActiveDeployment(context.Background(), testProject, testEnv)
		if err != nil {
			return ""
		}
		return d.Phase
	}
	h.ctrl = &Controller{
		Config: cfg, Env: testEnv, Platform: h.fake, Store: s,
		Tick: 5 * time.Millisecond, Timeout: 5 * time.Second,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Progress: h.progress,
	}
	return h
}

func (h *harness) progress(ev Event) {
	h.mu.Lock()
	h.events = append(h.events, ev)
	f := h.onPhase
	h.mu.Unlock()
	if ev.Kind == "phase" && f != nil {
		f(ev.Phase)
	}
}

// revision records a revision of the web service.
func (h *harness) revision(id string) store.Revision {
	h.t.Helper()
	r := store.Revision{ID: id, Project: testProject, Environment: testEnv, Source: "test",
		Services: map[string]store.ServiceRevision{"web": {Image: "example/web@sha256:" + strings.Repeat("a", 64), ConfigHash: id}}}
	if err := h.store.CreateRevision(h.ctx, r); err != nil {
		h.t.Fatal(err)
	}
	return r
}

// serving records rev and makes the fake run it in color with all traffic.
func (h *harness) serving(color, rev string) {
	h.revision(rev)
	h.fake.seed(color, rev)
}

func (h *harness) deploy(rev store.Revision) store.Deployment {
	h.t.Helper()
	d, err := h.ctrl.Deploy(h.ctx, rev)
	if err != nil {
		h.t.Fatalf("Deploy: %v", err)
	}
	stored, err := h.store.GetDeployment(h.ctx, d.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	if stored.Status != d.Status || stored.Phase != d.Phase {
		h.t.Fatalf("returned deployment %s/%s differs from the stored one %s/%s", d.Status, d.Phase, stored.Status, stored.Phase)
	}
	return stored
}

// request appends a continue/stop/rollback request as the CLI does.
func (h *harness) request(kind string) {
	if _, err := Request(context.Background(), h.store, testProject, testEnv, kind, "by test"); err != nil {
		h.t.Errorf("request %s: %v", kind, err)
	}
}

// phases returns the phases the driver started, in order.
func (h *harness) phases() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, ev := range h.events {
		if ev.Kind == "phase" {
			out = append(out, ev.Phase)
		}
	}
	return out
}

func (h *harness) envState() store.EnvState {
	h.t.Helper()
	st, err := h.store.GetEnvState(h.ctx, testProject, testEnv)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// callIndex returns the index of the first call matching f after from, or -1.
func callIndex(calls []fakeCall, from int, f func(fakeCall) bool) int {
	for i := max(from, 0); i < len(calls); i++ {
		if f(calls[i]) {
			return i
		}
	}
	return -1
}

func isRoute(prod map[string]int) func(fakeCall) bool {
	return func(c fakeCall) bool { return c.Op == "route" && mapsEqual(c.Routing.Production, prod) }
}

func isScale(color string, n int) func(fakeCall) bool {
	return func(c fakeCall) bool { return c.Op == "scale" && c.Color == color && c.Counts["web"] == n }
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func dumpCalls(calls []fakeCall) string {
	var b strings.Builder
	for i, c := range calls {
		fmt.Fprintf(&b, "\n  %2d %s", i, c)
	}
	return b.String()
}

func wantStatus(t *testing.T, d store.Deployment, status, phase string) {
	t.Helper()
	if d.Status != status || d.Phase != phase {
		t.Fatalf("deployment ended %s in %s, want %s in %s (reason: %s)", d.Status, d.Phase, status, phase, d.Reason)
	}
	if d.FinishedAt == nil {
		t.Errorf("finished deployment has no finished_at")
	}
}

func containsAll(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q does not contain %q", what, s, sub)
		}
	}
}

// lastEvent returns the environment's last event of a kind.
func (h *harness) lastEvent(kind string) (store.Event, error) {
	evs, err := h.store.ListEvents(h.ctx, store.EventFilter{Project: testProject, Environment: testEnv})
	if err != nil {
		return store.Event{}, err
	}
	for _, e := range slices.Backward(evs) {
		if e.Kind == kind {
			return e, nil
		}
	}
	return store.Event{}, errors.New("no event " + kind)
}

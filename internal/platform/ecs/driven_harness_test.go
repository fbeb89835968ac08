package ecs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
)

// ctrl is an ECS environment under the real deployment controller: a real
// store in t.TempDir(), a parsed cutover.yaml, and the Driven platform
// under test (its AWS answered by moto or by a stub).
type ctrl struct {
	t     *testing.T
	ctx   context.Context
	store *store.Store
	c     *deploy.Controller
	mu    sync.Mutex
	evs   []deploy.Event
}

// newCtrl parses a bluemed production environment on ECS with the given
// services and strategy (YAML under environments.production) and returns
// a controller that drives d.
func newCtrl(t *testing.T, d deploy.Driven, services []string, envYAML string) *ctrl {
	t.Helper()
	var svcs, ecsSvcs strings.Builder
	for i, name := range services {
		fmt.Fprintf(&svcs, "  %s: { image: bluemed/%s:1, port: %d, route: { path_prefix: /%s } }\n", name, name, 3001+i, name)
		fmt.Fprintf(&ecsSvcs, "        %s: { service: %s }\n", name, name)
	}
	yml := "version: 1\nproject: bluemed\nservices:\n" + svcs.String() + `environments:
  production:
    platform: ecs
` + envYAML + `    ecs:
      region: us-east-1
      cluster: c
      subnets: [subnet-0a1b2c3d]
      codedeploy: { application: bluemed }
      services:
` + ecsSvcs.String()
	switch {
	case strings.Contains(envYAML, "# ecs-native"):
		// ECS-native blue/green: the comment "# ecs-native" in envYAML asks for it.
		yml = strings.Replace(yml, "      codedeploy: { application: bluemed }\n", "      blue_green: ecs\n      role_arn: arn:aws:iam::123456789012:role/ecs-lb\n", 1)
		for _, name := range services {
			yml = strings.Replace(yml, "{ service: "+name+" }", "{ service: "+name+", rule: "+stubRule+", target_groups: { blue: "+stubTGBlue+", green: "+stubTGGreen+" } }", 1)
		}
	case !strings.Contains(envYAML, "blue_green"):
		yml = strings.Replace(yml, "      codedeploy: { application: bluemed }\n", "", 1)
	}
	cfg, err := config.Parse("cutover.yaml", []byte(yml))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yml, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h := &ctrl{t: t, ctx: ctx, store: s}
	h.c = &deploy.Controller{Config: cfg, Env: "production", Driven: d, Store: s, Tick: time.Millisecond, Timeout: 5 * time.Minute,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Owner: "test",
		Progress: func(e deploy.Event) { h.mu.Lock(); h.evs = append(h.evs, e); h.mu.Unlock() }}
	return h
}

// deploy records rev and deploys it through the controller.
func (h *ctrl) deploy(r store.Revision) store.Deployment {
	h.t.Helper()
	r.Project, r.Environment = "bluemed", "production"
	if err := h.store.CreateRevision(h.ctx, r); err != nil {
		h.t.Fatal(err)
	}
	d, err := h.c.Deploy(h.ctx, r)
	if err != nil {
		h.t.Fatalf("deploy: %v", err)
	}
	return d
}

// events returns the progress events' messages of a kind ("" for all).
func (h *ctrl) events(kind string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.evs {
		if kind == "" || e.Kind == kind {
			out = append(out, e.Message)
		}
	}
	return out
}

// phases returns the distinct phases the events were told in, in order.
func (h *ctrl) phases() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.evs {
		if n := len(out); n == 0 || out[n-1] != e.Phase {
			out = append(out, e.Phase)
		}
	}
	return out
}

// wantReadable checks that every phase the store and the events hold is one
// deploy.ParsePhase reads: one vocabulary for local and ECS deployments.
func (h *ctrl) wantReadable(d store.Deployment) {
	h.t.Helper()
	if _, err := deploy.ParsePhase(d.Phase); err != nil {
		h.t.Errorf("stored phase: %v", err)
	}
	for _, p := range h.phases() {
		if _, err := deploy.ParsePhase(p); err != nil {
			h.t.Errorf("event phase: %v", err)
		}
	}
	list, err := h.store.ListDeployments(h.ctx, "bluemed", "production", 10)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, got := range list {
		if _, err := deploy.ParsePhase(got.Phase); err != nil {
			h.t.Errorf("deployment %s in history: %v", got.ID, err)
		}
	}
}

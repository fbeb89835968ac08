package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testDeployment(id, revision string) Deployment {
	return Deployment{ID: id, Project: "bluemed", Environment: "production", Revision: revision,
		Strategy: "blue_green", Phase: "Pending", Owner: "h-1"}
}

func openWithRevisions(t *testing.T, ids ...string) *Store {
	t.Helper()
	s := openTest(t)
	for _, id := range ids {
		if err := s.CreateRevision(t.Context(), testRevision(id, testTime)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestDeploymentRoundTrip(t *testing.T) {
	s, ctx := openWithRevisions(t, "r-1", "r-2"), t.Context()
	want := testDeployment("d-1", "r-2")
	want.PreviousRevision = "r-1"
	want.TrafficPercent = 10
	want.Evidence = json.RawMessage(`{"alarms":[]}`)
	want.Data = json.RawMessage(`{"color":"green","step":1}`)
	want.CreatedAt = testTime
	if err := s.CreateDeployment(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetDeployment(ctx, "d-1")
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(got.UpdatedAt) > time.Hour || got.FinishedAt != nil {
		t.Fatalf("UpdatedAt %v, FinishedAt %v; want now and nil", got.UpdatedAt, got.FinishedAt)
	}
	want.Status, want.Generation, want.UpdatedAt = DeploymentInProgress, 1, got.UpdatedAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetDeployment =\n%+v\nwant\n%+v", got, want)
	}
	if _, err := s.GetDeployment(ctx, "d-missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetDeployment(missing): %v, want ErrNotFound", err)
	}
	b, _ := json.Marshal(got)
	for _, key := range []string{`"traffic_percent":10`, `"previous_revision":"r-1"`, `"generation":1`, `"data":{"color"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	if strings.Contains(string(b), "finished_at") {
		t.Errorf("JSON %s has finished_at for a deployment in progress", b)
	}
}

func TestCreateDeploymentRefuses(t *testing.T) {
	s, ctx := openWithRevisions(t, "r-1"), t.Context()
	if err := s.CreateDeployment(ctx, testDeployment("d-1", "r-1")); err != nil {
		t.Fatal(err)
	}
	other := testDeployment("d-1", "r-1")
	other.Environment = "staging"
	if err := s.CreateDeployment(ctx, other); !errors.Is(err, ErrConflict) {
		t.Errorf("reused ID: %v, want ErrConflict", err)
	}
	err := s.CreateDeployment(ctx, testDeployment("d-2", "r-1"))
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "d-1") {
		t.Errorf("second deployment in progress: %v, want ErrConflict naming d-1", err)
	}
	if err := s.CreateDeployment(ctx, testDeployment("d-3", "r-nope")); !errors.Is(err, ErrNotFound) ||
		!strings.Contains(err.Error(), "r-nope") {
		t.Errorf("unknown revision: %v, want ErrNotFound naming r-nope", err)
	}
	for name, mutate := range map[string]func(*Deployment){
		"no ID":        func(d *Deployment) { d.ID = "" },
		"no project":   func(d *Deployment) { d.Project = "" },
		"no strategy":  func(d *Deployment) { d.Strategy = "" },
		"bad status":   func(d *Deployment) { d.Status = "done" },
		"traffic 101":  func(d *Deployment) { d.TrafficPercent = 101 },
		"bad evidence": func(d *Deployment) { d.Evidence = json.RawMessage("{") },
	} {
		d := testDeployment("d-4", "r-1")
		d.Environment = "staging"
		mutate(&d)
		if err := s.CreateDeployment(ctx, d); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Another environment may deploy at the same time.
	d := testDeployment("d-5", "r-1")
	d.Environment = "staging"
	if err := s.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateDeploymentOptimistic(t *testing.T) {
	s, ctx := openWithRevisions(t, "r-1"), t.Context()
	d := testDeployment("d-1", "r-1")
	if err := s.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	d, _ = s.GetDeployment(ctx, "d-1")
	d.Phase, d.TrafficPercent = "Shifting", 50
	gen, err := s.UpdateDeployment(ctx, d, 1)
	if err != nil || gen != 2 {
		t.Fatalf("UpdateDeployment(expect 1) = %d, %v; want 2, nil", gen, err)
	}
	stale := d
	stale.Phase = "Install"
	if _, err := s.UpdateDeployment(ctx, stale, 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	if gen, err = s.UpdateDeployment(ctx, d, AnyGeneration); err != nil || gen != 3 {
		t.Fatalf("UpdateDeployment(any) = %d, %v; want 3, nil", gen, err)
	}
	got, _ := s.GetDeployment(ctx, "d-1")
	if got.Phase != "Shifting" || got.TrafficPercent != 50 || got.Generation != 3 || !got.CreatedAt.Equal(d.CreatedAt) {
		t.Fatalf("after updates: %+v", got)
	}
	moved := got
	moved.Environment = "staging"
	if _, err := s.UpdateDeployment(ctx, moved, 3); err == nil || !strings.Contains(err.Error(), "cannot change") {
		t.Fatalf("moving a deployment to another environment: %v", err)
	}
	missing := testDeployment("d-missing", "r-1")
	missing.Status = DeploymentInProgress
	if _, err := s.UpdateDeployment(ctx, missing, AnyGeneration); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of missing deployment: %v, want ErrNotFound", err)
	}
}

func TestDeploymentFinishedAt(t *testing.T) {
	s, ctx := openWithRevisions(t, "r-1"), t.Context()
	if err := s.CreateDeployment(ctx, testDeployment("d-1", "r-1")); err != nil {
		t.Fatal(err)
	}
	d, _ := s.GetDeployment(ctx, "d-1")
	d.Status, d.Reason = DeploymentRolledBack, "alarm 5xx went off at 40% traffic"
	if _, err := s.UpdateDeployment(ctx, d, d.Generation); err != nil {
		t.Fatal(err)
	}
	d, _ = s.GetDeployment(ctx, "d-1")
	if d.FinishedAt == nil || d.FinishedAt.Before(d.CreatedAt) {
		t.Fatalf("FinishedAt = %v after leaving in_progress", d.FinishedAt)
	}
	first := *d.FinishedAt
	// Later writes (a reason added after the fact) keep the first finish time.
	d.Reason += "; rolled back in 3s"
	d.FinishedAt = nil
	if _, err := s.UpdateDeployment(ctx, d, d.Generation); err != nil {
		t.Fatal(err)
	}
	d, _ = s.GetDeployment(ctx, "d-1")
	if d.FinishedAt == nil || !d.FinishedAt.Equal(first) {
		t.Fatalf("FinishedAt = %v, want %v kept", d.FinishedAt, first)
	}
	// Resuming clears it.
	d.Status = DeploymentInProgress
	if _, err := s.UpdateDeployment(ctx, d, d.Generation); err != nil {
		t.Fatal(err)
	}
	if d, _ = s.GetDeployment(ctx, "d-1"); d.FinishedAt != nil {
		t.Fatalf("FinishedAt = %v on a resumed deployment", d.FinishedAt)
	}
	// Created already finished: FinishedAt is set at once.
	f := testDeployment("d-2", "r-1")
	f.Environment, f.Status = "staging", DeploymentFailed
	if err := s.CreateDeployment(ctx, f); err != nil {
		t.Fatal(err)
	}
	if f, _ = s.GetDeployment(ctx, "d-2"); f.FinishedAt == nil {
		t.Fatal("deployment created as failed has no FinishedAt")
	}
}

func TestActiveAndLastSucceeded(t *testing.T) {
	s, ctx := openWithRevisions(t, "r-1", "r-2", "r-3"), t.Context()
	if _, err := s.ActiveDeployment(ctx, "bluemed", "production"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ActiveDeployment on empty store: %v", err)
	}
	if _, err := s.LastSucceededDeployment(ctx, "bluemed", "production"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LastSucceededDeployment on empty store: %v", err)
	}
	finish := func(id, status string) {
		t.Helper()
		d, err := s.GetDeployment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		d.Status = status
		if _, err := s.UpdateDeployment(ctx, d, d.Generation); err != nil {
			t.Fatal(err)
		}
	}
	for i, step := range []struct{ id, rev, status string }{
		{"d-1", "r-1", DeploymentSucceeded},
		{"d-2", "r-2", DeploymentSucceeded},
		{"d-3", "r-3", DeploymentRolledBack},
		{"d-4", "r-3", ""}, // left in progress
	} {
		d := testDeployment(step.id, step.rev)
		d.CreatedAt = testTime.Add(time.Duration(i) * time.Minute)
		if err := s.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
		if step.status != "" {
			finish(step.id, step.status)
		}
	}
	if d, err := s.ActiveDeployment(ctx, "bluemed", "production"); err != nil || d.ID != "d-4" {
		t.Fatalf("ActiveDeployment = %s, %v; want d-4", d.ID, err)
	}
	if d, err := s.LastSucceededDeployment(ctx, "bluemed", "production"); err != nil || d.Revision != "r-2" {
		t.Fatalf("LastSucceededDeployment = %s (%s), %v; want d-2 (r-2)", d.ID, d.Revision, err)
	}
	if _, err := s.ActiveDeployment(ctx, "bluemed", "staging"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ActiveDeployment of another environment: %v", err)
	}

	ids := func(project, env string, limit int) []string {
		t.Helper()
		ds, err := s.ListDeployments(ctx, project, env, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	if got := ids("bluemed", "production", 0); !reflect.DeepEqual(got, []string{"d-4", "d-3", "d-2", "d-1"}) {
		t.Fatalf("ListDeployments = %v, want newest first", got)
	}
	if got := ids("", "", 2); !reflect.DeepEqual(got, []string{"d-4", "d-3"}) {
		t.Fatalf("ListDeployments(limit 2) = %v", got)
	}
	if got := ids("other", "", 0); len(got) != 0 {
		t.Fatalf("ListDeployments(other project) = %v", got)
	}
}

// A deployment, the lease that guards it and the environment state change
// together, and the lease check makes a stale controller's write fail.
func TestDeploymentWithLeaseInTx(t *testing.T) {
	s, ctx := openWithRevisions(t, "r-1"), t.Context()
	key := "bluemed/production" // deploy.LeaseKey
	if _, err := s.AcquireLease(ctx, key, Holder{ID: "h-1"}, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateDeployment(ctx, testDeployment("d-1", "r-1")); err != nil {
		t.Fatal(err)
	}
	step := func(holder string) error {
		return s.Tx(ctx, func(tx *Tx) error {
			if err := tx.RenewLease(ctx, key, holder, time.Minute); err != nil {
				return err
			}
			d, err := tx.GetDeployment(ctx, "d-1")
			if err != nil {
				return err
			}
			d.Phase, d.Status = "Succeeded", DeploymentSucceeded
			if _, err := tx.UpdateDeployment(ctx, d, d.Generation); err != nil {
				return err
			}
			_, err = tx.PutEnvState(ctx, EnvState{Project: "bluemed", Environment: "production", Revision: "r-1", Status: "up"}, AnyGeneration)
			return err
		})
	}
	if err := step("h-stale"); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("write by a holder without the lease: %v, want ErrLeaseLost", err)
	}
	if d, _ := s.GetDeployment(ctx, "d-1"); d.Generation != 1 {
		t.Fatalf("refused step still wrote the deployment: %+v", d)
	}
	if err := step("h-1"); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.GetDeployment(ctx, "d-1"); d.Status != DeploymentSucceeded || d.FinishedAt == nil {
		t.Fatalf("after step: %+v", d)
	}
}

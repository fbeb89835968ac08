package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestEnvStateGenerations(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	if err := s.CreateRevision(ctx, testRevision("r-1", time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetEnvState(ctx, "bluemed", "production"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetEnvState before any write: %v, want ErrNotFound", err)
	}
	st := EnvState{Project: "bluemed", Environment: "production", Revision: "r-1", Status: "up",
		Details: json.RawMessage(`{"color":"blue","ports":[32768]}`)}
	gen, err := s.PutEnvState(ctx, st, 0)
	if err != nil || gen != 1 {
		t.Fatalf("first PutEnvState = %d, %v; want 1, nil", gen, err)
	}
	if _, err := s.PutEnvState(ctx, st, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale PutEnvState: %v, want ErrConflict", err)
	}
	st.Status = "deploying"
	if gen, err = s.PutEnvState(ctx, st, 1); err != nil || gen != 2 {
		t.Fatalf("PutEnvState(expect 1) = %d, %v; want 2, nil", gen, err)
	}
	if gen, err = s.PutEnvState(ctx, st, AnyGeneration); err != nil || gen != 3 {
		t.Fatalf("PutEnvState(any) = %d, %v; want 3, nil", gen, err)
	}
	got, err := s.GetEnvState(ctx, "bluemed", "production")
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 3 || got.Status != "deploying" || got.Revision != "r-1" ||
		string(got.Details) != string(st.Details) || time.Since(got.UpdatedAt) > time.Hour {
		t.Fatalf("GetEnvState = %+v", got)
	}

	if _, err := s.PutEnvState(ctx, EnvState{Project: "bluemed", Environment: "production", Revision: "r-nope"}, AnyGeneration); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown revision: %v, want ErrNotFound", err)
	}
	if _, err := s.PutEnvState(ctx, EnvState{Project: "bluemed", Environment: "x", Details: json.RawMessage("{")}, AnyGeneration); err == nil {
		t.Fatal("invalid JSON details accepted")
	}
}

func TestListAndDeleteEnvStates(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	for _, pe := range [][2]string{{"b", "prod"}, {"a", "staging"}, {"a", "prod"}} {
		if _, err := s.PutEnvState(ctx, EnvState{Project: pe[0], Environment: pe[1], Status: "down"}, AnyGeneration); err != nil {
			t.Fatal(err)
		}
	}
	names := func(project string) []string {
		t.Helper()
		states, err := s.ListEnvStates(ctx, project)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, st := range states {
			out = append(out, st.Project+"/"+st.Environment)
		}
		return out
	}
	if got := names(""); !reflect.DeepEqual(got, []string{"a/prod", "a/staging", "b/prod"}) {
		t.Fatalf("all states = %v", got)
	}
	if got := names("a"); !reflect.DeepEqual(got, []string{"a/prod", "a/staging"}) {
		t.Fatalf("project a = %v", got)
	}
	for range 2 { // deleting twice is fine
		if err := s.DeleteEnvState(ctx, "a", "prod"); err != nil {
			t.Fatal(err)
		}
	}
	if got := names("a"); !reflect.DeepEqual(got, []string{"a/staging"}) {
		t.Fatalf("after delete = %v", got)
	}
}

package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRevisionRoundTrip(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	want := testRevision("r-000000000001", time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC))
	if err := s.CreateRevision(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRevision(ctx, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetRevision = %+v, want %+v", got, want)
	}
	if _, err := s.GetRevision(ctx, "r-missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRevision(missing) error = %v, want ErrNotFound", err)
	}
}

func TestRevisionImmutable(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	r := testRevision("r-1", time.Now())
	if err := s.CreateRevision(ctx, r); err != nil {
		t.Fatal(err)
	}
	// Same content, other provenance: a no-op that keeps the first record.
	again := r
	again.Source, again.CreatedAt = "working tree", r.CreatedAt.Add(time.Hour)
	if err := s.CreateRevision(ctx, again); err != nil {
		t.Fatalf("re-creating identical revision: %v", err)
	}
	if got, _ := s.GetRevision(ctx, r.ID); got.Source != r.Source {
		t.Fatalf("source overwritten: %q", got.Source)
	}

	changed := testRevision("r-1", time.Now())
	changed.Services["backend"] = ServiceRevision{Image: "sha256:other", ConfigHash: "c1"}
	err := s.CreateRevision(ctx, changed)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "service backend") {
		t.Fatalf("changing a revision: error = %v, want ErrConflict naming service backend", err)
	}
	extra := testRevision("r-1", time.Now())
	extra.Services["worker"] = ServiceRevision{Image: "sha256:w"}
	if err := s.CreateRevision(ctx, extra); !errors.Is(err, ErrConflict) {
		t.Fatalf("adding a service: error = %v, want ErrConflict", err)
	}
}

func TestRevisionValidation(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	for name, r := range map[string]Revision{
		"no id":       {Project: "p", Environment: "e", Services: map[string]ServiceRevision{"a": {Image: "i"}}},
		"no project":  {ID: "r", Environment: "e", Services: map[string]ServiceRevision{"a": {Image: "i"}}},
		"no services": {ID: "r", Project: "p", Environment: "e"},
		"no image":    {ID: "r", Project: "p", Environment: "e", Services: map[string]ServiceRevision{"a": {}}},
	} {
		if err := s.CreateRevision(ctx, r); err == nil {
			t.Errorf("%s: CreateRevision succeeded", name)
		}
	}
	if revs, _ := s.ListRevisions(ctx, "", "", 0); len(revs) != 0 {
		t.Fatalf("invalid revisions were stored: %v", revs)
	}
}

func TestListRevisionsNewestFirst(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"r-a", "r-b", "r-c"} {
		// 1ns apart: the text encoding must still order them.
		if err := s.CreateRevision(ctx, testRevision(id, base.Add(time.Duration(i)))); err != nil {
			t.Fatal(err)
		}
	}
	other := testRevision("r-staging", base.Add(time.Hour))
	other.Environment = "staging"
	if err := s.CreateRevision(ctx, other); err != nil {
		t.Fatal(err)
	}

	ids := func(revs []Revision, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range revs {
			if len(r.Services) != 2 {
				t.Fatalf("revision %s has %d services, want 2", r.ID, len(r.Services))
			}
			out = append(out, r.ID)
		}
		return out
	}
	if got := ids(s.ListRevisions(ctx, "bluemed", "production", 0)); !reflect.DeepEqual(got, []string{"r-c", "r-b", "r-a"}) {
		t.Fatalf("production revisions = %v", got)
	}
	if got := ids(s.ListRevisions(ctx, "bluemed", "production", 2)); !reflect.DeepEqual(got, []string{"r-c", "r-b"}) {
		t.Fatalf("limit 2 = %v", got)
	}
	if got := ids(s.ListRevisions(ctx, "bluemed", "", 0)); len(got) != 4 || got[0] != "r-staging" {
		t.Fatalf("all environments = %v", got)
	}
}

package store

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testTime = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "home", "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testRevision(id string, created time.Time) Revision {
	return Revision{
		ID: id, Project: "bluemed", Environment: "production", Source: "git abc123", CreatedAt: created,
		Services: map[string]ServiceRevision{
			"backend":  {Image: "sha256:" + strings.Repeat("a", 64), ConfigHash: "c1"},
			"frontend": {Image: "registry/front@sha256:" + strings.Repeat("b", 64), ConfigHash: "c2"},
		},
	}
}

func TestTxIsAtomic(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	boom := errors.New("boom")
	err := s.Tx(ctx, func(tx *Tx) error {
		if err := tx.CreateRevision(ctx, testRevision("r-1", time.Now())); err != nil {
			return err
		}
		if _, err := tx.PutEnvState(ctx, EnvState{Project: "bluemed", Environment: "production", Revision: "r-1", Status: "up"}, 0); err != nil {
			return err
		}
		if _, err := tx.AppendEvent(ctx, Event{Kind: "deployed"}); err != nil {
			return err
		}
		// Reads inside the transaction see its own writes.
		if st, err := tx.GetEnvState(ctx, "bluemed", "production"); err != nil || st.Revision != "r-1" {
			t.Errorf("read inside tx = %+v, %v", st, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx error = %v, want boom", err)
	}
	if _, err := s.GetRevision(ctx, "r-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revision survived a rolled-back Tx: %v", err)
	}
	if evs, _ := s.ListEvents(ctx, EventFilter{}); len(evs) != 0 {
		t.Fatalf("events survived a rolled-back Tx: %v", evs)
	}
	// A panic rolls back too, and leaves the store usable.
	func() {
		defer func() { recover() }()
		s.Tx(ctx, func(tx *Tx) error {
			tx.AppendEvent(ctx, Event{Kind: "x"})
			panic("caller bug")
		})
	}()
	if seq, err := s.AppendEvent(ctx, Event{Kind: "after"}); err != nil || seq != 1 {
		t.Fatalf("AppendEvent after panic = %d, %v; want 1, nil", seq, err)
	}
}

func TestJSONShape(t *testing.T) {
	b, err := json.Marshal(testRevision("r-1", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"id":"r-1"`, `"created_at":"2025-01-01T00:00:00Z"`, `"config_hash":"c1"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("revision JSON %s lacks %s", b, key)
		}
	}
}

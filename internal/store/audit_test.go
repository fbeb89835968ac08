package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The audit log is append-only even for a writer that bypasses the store's
// API and runs SQL on the file.
func TestAuditLogIsAppendOnly(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	for _, action := range []string{"trigger", "approve"} {
		if _, err := s.AppendAudit(ctx, AuditEntry{Actor: "alice", Role: "approver", Via: "api", Remote: "127.0.0.1:1", Action: action, Target: "x-1", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AppendAudit(ctx, AuditEntry{Action: "trigger"}); err == nil {
		t.Fatal("an entry without an actor was appended")
	}
	for _, stmt := range []string{
		`UPDATE audit_log SET actor = 'mallory'`,
		`UPDATE audit_log SET outcome = 'ok' WHERE seq = 1`,
		`DELETE FROM audit_log`,
		`DELETE FROM audit_log WHERE seq = 2`,
	} {
		if _, err := s.db.ExecContext(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: %v, want refused as append-only", stmt, err)
		}
	}
	got, err := s.ListAudit(ctx, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Actor != "alice" || got[0].Action != "trigger" || got[1].Action != "approve" || got[0].Seq >= got[1].Seq {
		t.Fatalf("audit log after the attempts: %+v", got)
	}
	if later, _ := s.ListAudit(ctx, time.Now().Add(time.Minute), 0); len(later) != 0 {
		t.Fatalf("since a future time: %+v", later)
	}
	if last, _ := s.ListAudit(ctx, time.Time{}, 1); len(last) != 1 || last[0].Action != "approve" {
		t.Fatalf("limit 1 keeps the newest: %+v", last)
	}
}

func TestTokensAreUniqueByLiveNameAndRevokedForGood(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	if err := s.CreateToken(ctx, Token{Name: "ci", Role: "deployer", Hash: "h1", CreatedBy: "root"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, Token{Name: "ci", Role: "admin", Hash: "h2"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate live name: %v", err)
	}
	if got, err := s.TokenByHash(ctx, "h1"); err != nil || got.Name != "ci" || got.Role != "deployer" {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	if _, err := s.RevokeToken(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking an unknown name: %v", err)
	}
	if _, err := s.RevokeToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenByHash(ctx, "h1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a revoked token still authenticates: %v", err)
	}
	if _, err := s.RevokeToken(ctx, "ci"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
	// The name is free again; the revoked token stays listed as revoked.
	if err := s.CreateToken(ctx, Token{Name: "ci", Role: "viewer", Hash: "h3"}); err != nil {
		t.Fatal(err)
	}
	live, _ := s.ListTokens(ctx, false)
	all, _ := s.ListTokens(ctx, true)
	if len(live) != 1 || live[0].Role != "viewer" || len(all) != 2 || all[0].RevokedAt == nil {
		t.Fatalf("live %+v, all %+v", live, all)
	}
}

// TestTimesOutsideTheTextsRangeSortAsTimes: a since after year 9999 in UTC
// (9999-12-31T23:59:59-00:01, which the API's pattern takes) is after every
// entry, one before year 0 before every entry; their own text ("10000-…",
// "-0001-…") would have sorted otherwise.
func TestTimesOutsideTheTextsRangeSortAsTimes(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	if _, err := s.AppendAudit(ctx, AuditEntry{Actor: "alice", Role: "admin", Via: "api", Action: "trigger", Target: "x-1", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	late := time.Date(9999, 12, 31, 23, 59, 59, 0, time.FixedZone("", -60))
	if got, err := s.ListAudit(ctx, late, 0); err != nil || len(got) != 0 {
		t.Fatalf("since %v (year %d in UTC): %d entries, %v; want none", late, late.UTC().Year(), len(got), err)
	}
	early := time.Date(0, 1, 1, 0, 0, 0, 0, time.FixedZone("", 3600))
	if got, err := s.ListAudit(ctx, early, 0); err != nil || len(got) != 1 {
		t.Fatalf("since %v (year %d in UTC): %d entries, %v; want 1", early, early.UTC().Year(), len(got), err)
	}
	for in, want := range map[time.Time]string{
		late:  "9999-12-31T23:59:59.999999999Z",
		early: "0000-01-01T00:00:00.000000000Z",
		time.Date(2026, 12, 7, 3, 0, 0, 5, time.UTC): "2026-12-07T03:00:00.000000005Z",
	} {
		if got := formatTime(in); got != want {
			t.Errorf("formatTime(%v) = %s, want %s", in, got, want)
		}
	}
}

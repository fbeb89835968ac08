package store

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// A login link works once and only before its expiry, also when two
// browsers race with it.
func TestLoginLinkIsUsableOnceBeforeItExpires(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, h := range []string{"h1", "h2"} {
		if err := s.CreateLoginLink(ctx, LoginLink{Hash: h, Actor: "owner", Role: "admin", CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = s.UseLoginLink(ctx, "h1", now.Add(time.Minute)) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrLinkUsed):
			t.Fatalf("a concurrent second use: %v, want ErrLinkUsed", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of 8 concurrent uses succeeded, want 1", ok)
	}
	if _, err := s.UseLoginLink(ctx, "h2", now.Add(5*time.Minute)); !errors.Is(err, ErrLinkExpired) {
		t.Fatalf("at its expiry: %v, want ErrLinkExpired", err)
	}
	if _, err := s.UseLoginLink(ctx, "nope", now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an unknown link: %v", err)
	}
}

func TestSessionEndsAtLogoutAndExpiry(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	now := time.Now().UTC()
	if err := s.CreateSession(ctx, Session{Hash: "s1", Actor: "alice", Role: "approver", Via: "token", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.LiveSession(ctx, "s1", now)
	if err != nil || got.Actor != "alice" || got.Role != "approver" {
		t.Fatalf("LiveSession = %+v, %v", got, err)
	}
	if _, err := s.LiveSession(ctx, "s1", now.Add(time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after its expiry: %v", err)
	}
	if err := s.EndSession(ctx, "s1", now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LiveSession(ctx, "s1", now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after logout: %v", err)
	}
	if err := s.CreateSession(ctx, Session{Hash: "s2"}); err == nil {
		t.Fatal("a session without an actor was stored")
	}
}

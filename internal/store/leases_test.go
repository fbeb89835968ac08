package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

var (
	holderA = Holder{ID: "h-a", PID: 4242, Host: "x", Command: "cutover deploy"}
	holderB = Holder{ID: "h-b", PID: 5151, Host: "y", Command: "cutover rollback"}
)

func TestLeaseAcquireHeldRelease(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	key := "bluemed/production" // deploy.LeaseKey
	if _, err := s.GetLease(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetLease of a free key: %v, want ErrNotFound", err)
	}
	l, err := s.AcquireLease(ctx, key, holderA, 12*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Holder != holderA || !l.ExpiresAt.After(l.AcquiredAt) {
		t.Fatalf("lease = %+v", l)
	}
	if got, err := s.GetLease(ctx, key); err != nil || got.Key != key || got.Holder != l.Holder ||
		!got.AcquiredAt.Equal(l.AcquiredAt) || !got.ExpiresAt.Equal(l.ExpiresAt) {
		t.Fatalf("GetLease = %+v, %v; want %+v", got, err, l)
	}

	takeoverAsked := false
	_, err = s.AcquireLease(ctx, key, holderB, time.Minute, func(cur Holder) bool {
		takeoverAsked = cur == holderA
		return false
	})
	var held *LeaseHeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrLeaseHeld) || held.Lease.Holder != holderA {
		t.Fatalf("second holder: %v, want *LeaseHeldError naming holder A", err)
	}
	if !takeoverAsked {
		t.Error("takeover was not asked about the current holder")
	}
	// The seconds may round down on a slow machine; the rest is exact.
	want := regexp.MustCompile(`^environment bluemed/production is being deployed by pid 4242 on host x \(cutover deploy\) since \d\d:\d\d:\d\d \([01]s ago\)$`)
	if !want.MatchString(err.Error()) {
		t.Errorf("error text %q does not match %s", err, want)
	}

	// The same holder re-acquires: the lease is extended, AcquiredAt kept.
	again, err := s.AcquireLease(ctx, key, holderA, time.Hour, nil)
	if err != nil || !again.AcquiredAt.Equal(l.AcquiredAt) || !again.ExpiresAt.After(l.ExpiresAt) {
		t.Fatalf("re-acquire = %+v, %v", again, err)
	}

	// Releasing someone else's lease does nothing; releasing ours frees it.
	if err := s.ReleaseLease(ctx, key, holderB.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetLease(ctx, key); err != nil {
		t.Fatalf("lease gone after another holder's release: %v", err)
	}
	if err := s.ReleaseLease(ctx, key, holderA.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetLease(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lease after release: %v, want ErrNotFound", err)
	}
	if l, err := s.AcquireLease(ctx, key, holderB, time.Minute, nil); err != nil || l.Holder != holderB {
		t.Fatalf("acquire after release = %+v, %v", l, err)
	}
}

func TestLeaseExpiryAndTakeover(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	if _, err := s.AcquireLease(ctx, "k", holderA, time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	l, err := s.AcquireLease(ctx, "k", holderB, time.Minute, func(Holder) bool {
		t.Error("takeover asked about an expired lease")
		return false
	})
	if err != nil || l.Holder != holderB {
		t.Fatalf("acquire of an expired lease = %+v, %v", l, err)
	}
	// Holder B's process is found dead: A takes over before expiry.
	l, err = s.AcquireLease(ctx, "k", holderA, time.Minute, func(cur Holder) bool { return cur.PID == holderB.PID })
	if err != nil || l.Holder != holderA {
		t.Fatalf("takeover = %+v, %v", l, err)
	}
	// B finds out at its next renewal, and its release does not free A's lease.
	err = s.RenewLease(ctx, "k", holderB.ID, time.Minute)
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renewal by the old holder: %v, want ErrLeaseLost", err)
	}
	t.Log(err)
	if err := s.ReleaseLease(ctx, "k", holderB.ID); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.GetLease(ctx, "k"); err != nil || cur.Holder != holderA {
		t.Fatalf("lease after old holder's release = %+v, %v", cur, err)
	}
}

func TestLeaseRenew(t *testing.T) {
	s, ctx := openTest(t), t.Context()
	if err := s.RenewLease(ctx, "k", holderA.ID, time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renewing a lease never acquired: %v, want ErrLeaseLost", err)
	}
	first, err := s.AcquireLease(ctx, "k", holderA, time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	// Expired but not taken: still ours.
	if err := s.RenewLease(ctx, "k", holderA.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	l, err := s.GetLease(ctx, "k")
	if err != nil || !l.ExpiresAt.After(time.Now().Add(30*time.Minute)) || !l.AcquiredAt.Equal(first.AcquiredAt) {
		t.Fatalf("renewed lease = %+v, %v", l, err)
	}
	if _, err := s.AcquireLease(ctx, "k", holderB, time.Minute, nil); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("acquire of a renewed lease: %v, want ErrLeaseHeld", err)
	}
	if err := s.ReleaseLease(ctx, "k", holderA.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RenewLease(ctx, "k", holderA.ID, time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renewing a released lease: %v, want ErrLeaseLost", err)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, err := s.AcquireLease(ctx, "k", holderA, ttl, nil); err == nil {
			t.Errorf("AcquireLease with ttl %v accepted", ttl)
		}
	}
	if _, err := s.AcquireLease(ctx, "k", Holder{}, time.Minute, nil); err == nil {
		t.Error("AcquireLease without a holder ID accepted")
	}
}

// Two Stores on one file stand for two `cutover deploy` processes; of all
// their goroutines racing for the same environment, exactly one gets it.
func TestLeaseRaceAcrossStores(t *testing.T) {
	const perStore = 12
	path := filepath.Join(t.TempDir(), "cutover.db")
	ctx := t.Context()
	stores := make([]*Store, 2)
	for i := range stores {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	var others []error
	start := make(chan struct{})
	for i, s := range stores {
		for j := range perStore {
			h := Holder{ID: fmt.Sprintf("h-%d-%d", i, j), PID: 1000*i + j, Host: "test", Command: "cutover deploy"}
			wg.Go(func() {
				<-start
				_, err := s.AcquireLease(ctx, "bluemed/production", h, time.Minute, func(Holder) bool { return false })
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					winners = append(winners, h.ID)
				} else {
					others = append(others, err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d winners %v, want exactly 1", len(winners), winners)
	}
	for _, err := range others {
		var held *LeaseHeldError
		if !errors.As(err, &held) || held.Lease.Holder.ID != winners[0] {
			t.Errorf("loser got %v, want *LeaseHeldError naming %s", err, winners[0])
		}
	}
	if l, err := stores[1].GetLease(ctx, "bluemed/production"); err != nil || l.Holder.ID != winners[0] {
		t.Fatalf("stored lease = %+v, %v; want held by %s", l, err, winners[0])
	}
}

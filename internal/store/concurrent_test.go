package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Two Stores on one file stand for the CLI and the daemon. With immediate
// transactions and busy_timeout, none of their writers may see SQLITE_BUSY.
func TestTwoStoresWriteConcurrently(t *testing.T) {
	const writersPerStore, iterations = 3, 25
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

	// A follower tails the log as `cutover events --follow` would, and checks
	// that resuming after the last seen seq never skips one.
	followCtx, stopFollow := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() { followed <- follow(followCtx, stores[1]) }()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	errs := make(chan error, len(stores)*writersPerStore)
	for _, s := range stores {
		for range writersPerStore {
			wg.Go(func() {
				for range iterations {
					// Read-modify-write inside one transaction: the read holds the write lock already.
					start := time.Now()
					err := s.Tx(ctx, func(tx *Tx) error {
						var gen int64
						if st, err := tx.GetEnvState(ctx, "p", "e"); err == nil {
							gen = st.Generation
						} else if !errors.Is(err, ErrNotFound) {
							return err
						}
						if _, err := tx.PutEnvState(ctx, EnvState{Project: "p", Environment: "e", Status: "up"}, gen); err != nil {
							return err
						}
						_, err := tx.AppendEvent(ctx, Event{Project: "p", Environment: "e", Kind: "write"})
						return err
					})
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					slowest = max(slowest, time.Since(start))
					mu.Unlock()
					// Real writers do some work between writes. Without any pause, one
					// store re-takes the lock the instant it commits and the other's
					// busy handler, which polls, can starve for seconds on a loaded machine.
					time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	stopFollow()
	if err := <-followed; err != nil {
		t.Error(err)
	}

	// Not asserted (timing): how close the slowest writer came to busyTimeout.
	t.Logf("slowest transaction %v (busy timeout %v)", slowest, busyTimeout)
	const total = 2 * writersPerStore * iterations
	st, err := stores[0].GetEnvState(ctx, "p", "e")
	if err != nil || st.Generation != total {
		t.Fatalf("generation = %d, %v; want %d", st.Generation, err, total)
	}
	evs, err := stores[1].ListEvents(ctx, EventFilter{})
	if err != nil || len(evs) != total {
		t.Fatalf("%d events, %v; want %d", len(evs), err, total)
	}
}

func follow(ctx context.Context, s *Store) error {
	var last int64
	for ctx.Err() == nil {
		evs, err := s.ListEvents(ctx, EventFilter{AfterSeq: last, Limit: 10})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, e := range evs {
			if e.Seq != last+1 {
				return fmt.Errorf("follower skipped from seq %d to %d", last, e.Seq)
			}
			last = e.Seq
		}
		if len(evs) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// Optimistic concurrency between processes: the second of two writers that
// read the same generation is refused.
func TestGenerationConflictAcrossStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cutover.db")
	ctx := t.Context()
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	if _, err := a.PutEnvState(ctx, EnvState{Project: "p", Environment: "e", Status: "up"}, 0); err != nil {
		t.Fatal(err)
	}
	seenA, _ := a.GetEnvState(ctx, "p", "e")
	seenB, _ := b.GetEnvState(ctx, "p", "e")
	if _, err := b.PutEnvState(ctx, EnvState{Project: "p", Environment: "e", Status: "deploying"}, seenB.Generation); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutEnvState(ctx, EnvState{Project: "p", Environment: "e", Status: "down"}, seenA.Generation); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale write from the other store: %v, want ErrConflict", err)
	}
	if st, _ := a.GetEnvState(ctx, "p", "e"); st.Status != "deploying" {
		t.Fatalf("status = %q, want deploying", st.Status)
	}
}

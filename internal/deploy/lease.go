package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cutoverdev/cutover/internal/proc"
	"github.com/cutoverdev/cutover/internal/store"
)

// LeaseTTL bounds how long a dead controller on another host blocks an
// environment; on this host a dead holder is detected by its PID at once.
const LeaseTTL = 15 * time.Second

// LeaseKey names the lease of one environment.
func LeaseKey(project, env string) string { return project + "/" + env }

// Lock takes the environment's lease, so only one deployment runs at a
// time. With wait it retries until the lease is free or ctx ends. The
// returned context is cancelled if the lease is lost; release gives it up.
func Lock(ctx context.Context, s *store.Store, project, env, command string, wait bool) (context.Context, func(), error) {
	host, _ := os.Hostname()
	h := store.Holder{ID: fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()), PID: os.Getpid(), Host: host, Command: command}
	key := LeaseKey(project, env)
	for {
		_, err := s.AcquireLease(ctx, key, h, LeaseTTL, holderGone)
		if err == nil {
			break
		}
		if !wait || !errors.Is(err, store.ErrLeaseHeld) {
			if errors.Is(err, store.ErrLeaseHeld) {
				return nil, nil, fmt.Errorf("%w (wait for it with --wait, or stop it with `cutover stop %s`)", err, env)
			}
			return nil, nil, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	lctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := s.RenewLease(context.WithoutCancel(ctx), key, h.ID, LeaseTTL); err != nil {
					cancel(fmt.Errorf("lost the lease of %s: %w", key, err))
					return
				}
			}
		}
	}()
	release := func() {
		close(done)
		cancel(nil)
		_ = s.ReleaseLease(context.WithoutCancel(ctx), key, h.ID)
	}
	return lctx, release, nil
}

// Held reports whether a live process holds the environment's lease, so
// drives its deployment in progress: false when nobody holds it, when it
// expired, or when its holder on this host is dead (what Lock takes over).
func Held(ctx context.Context, s *store.Store, project, env string) bool {
	l, err := s.GetLease(ctx, LeaseKey(project, env))
	if err != nil {
		return !errors.Is(err, store.ErrNotFound) // unread: say nothing
	}
	return time.Now().Before(l.ExpiresAt) && !holderGone(l.Holder)
}

// holderGone: a lease holder on this host whose process is gone, whose
// lease Lock takes over at once.
func holderGone(h store.Holder) bool {
	host, _ := os.Hostname()
	return h.Host == host && !proc.Alive(h.PID)
}

package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/store"
)

// schedule runs pipeline.schedule: at each entry's cron time it queues the
// head of the entry's branch as a scheduled execution, until ctx ends.
// Times missed while the daemon was down are not made up (as cron does).
// Each firing is a delivery ("schedule", entry and time), so a daemon
// restarted within the same minute, or two daemons on one store, queue it
// once.
func (s *Server) schedule(ctx context.Context) {
	entries := s.Config.EffectivePipeline().Schedule
	if len(entries) == 0 {
		return
	}
	next := make([]time.Time, len(entries))
	for i, e := range entries {
		next[i], _ = e.Next(time.Now()) // validated with the configuration
	}
	for {
		soonest := 0
		for i := range next {
			if next[i].Before(next[soonest]) {
				soonest = i
			}
		}
		timer := time.NewTimer(time.Until(next[soonest]))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		at := next[soonest]
		if _, err := s.fire(ctx, soonest, entries[soonest], at); err != nil && !errors.Is(err, store.ErrDuplicate) {
			s.Log.Warn("scheduled execution not queued", "branch", entries[soonest].Branch, "cron", entries[soonest].Cron, "err", err)
		}
		next[soonest], _ = entries[soonest].Next(at)
	}
}

// fire queues one scheduled execution of e's branch head for the time at.
func (s *Server) fire(ctx context.Context, i int, e config.Schedule, at time.Time) (string, error) {
	s.setDefaults()
	commit, err := s.Resolve(ctx, s.Repo, e.Branch)
	if err != nil {
		return "", fmt.Errorf("branch %s: %w", e.Branch, err)
	}
	id, err := s.Enqueue(ctx, pipeline.Trigger{Kind: pipeline.TriggerSchedule, Branch: e.Branch, Commit: commit, Author: "schedule"},
		store.Delivery{Source: "schedule", ID: fmt.Sprintf("%d@%s", i, at.UTC().Format(time.RFC3339))})
	if err == nil {
		s.Log.Info("scheduled execution queued", "execution", id, "branch", e.Branch, "commit", commit, "cron", e.Cron)
	}
	return id, err
}

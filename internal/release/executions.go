package release

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/store"
)

// LogOptions: only Action's lines (all when ""); with Follow, keep reading
// until the execution has ended and its last line was passed on.
type LogOptions struct {
	Action string
	Follow bool
	Poll   time.Duration // how often a follow looks for more (default 300ms)
}

// Logs passes an execution's log lines (secrets already masked) to fn in
// order. A follow ends when the execution ends or ctx is done (no error).
func (m *Manager) Logs(ctx context.Context, executionID string, o LogOptions, fn func(store.LogLine)) error {
	if _, err := m.execution(ctx, executionID); err != nil {
		return err
	}
	const page = 1000
	var after int64
	for {
		lines, err := m.Store.ListLogs(ctx, executionID, o.Action, after, page)
		if err != nil {
			return err
		}
		for _, l := range lines {
			after = l.Seq
			fn(l)
		}
		if len(lines) == page {
			continue
		}
		if !o.Follow {
			return nil
		}
		x, err := m.Store.GetExecution(ctx, executionID)
		if err != nil {
			return err
		}
		if !store.ExecutionActive(x.Status) {
			if more, _ := m.Store.ListLogs(ctx, executionID, o.Action, after, 1); len(more) == 0 {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(orDefault(o.Poll, 300*time.Millisecond)):
		}
	}
}

// TriggerOptions are what a foreground `cutover run` asks to run; empty
// fields are worked out from the repository cutover.yaml is in.
type TriggerOptions struct {
	Kind, Repo, Branch, Commit, Base string
	PR                               int
}

// LocalTrigger is the trigger of a foreground run of the pipeline of the
// project's file (cutover.yaml): the repository it is in (unless o.Repo),
// its path there, and the branch checked out (unless o.Branch), by the OS user.
func LocalTrigger(ctx context.Context, file string, o TriggerOptions) (pipeline.Trigger, error) {
	switch o.Kind {
	case pipeline.TriggerManual, pipeline.TriggerPush, pipeline.TriggerPullRequest:
	default:
		return pipeline.Trigger{}, UsageError{fmt.Sprintf("--kind %q: write manual, push or pull_request", o.Kind)}
	}
	top, rel, err := RepoOf(ctx, file)
	if err != nil {
		return pipeline.Trigger{}, err
	}
	t := pipeline.Trigger{Kind: o.Kind, Repo: cmp.Or(o.Repo, top), Branch: o.Branch, Commit: o.Commit, ConfigPath: rel, PR: o.PR, Author: auth.LocalUser().Name, Base: o.Base}
	if t.Branch == "" {
		if t.Branch, err = CurrentBranch(ctx, top); err != nil || t.Branch == "HEAD" {
			if _, err := gitOut(ctx, top, "rev-parse", "--verify", "--quiet", "HEAD"); err != nil {
				return t, UsageError{fmt.Sprintf("the repository %s has no commit yet: commit your files first (git add -A && git commit -m ...), the pipeline runs a commit", top)}
			}
			return t, UsageError{"--branch: the repository is on a detached HEAD; name the branch to run"}
		}
	}
	return t, nil
}

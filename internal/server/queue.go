package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/webhook"
)

// rescan is how often the queue is read from the store even without a
// wake-up (triggers queued by another process, a lost wake-up).
const rescan = 2 * time.Second

// Enqueue persists t as a queued execution and wakes the queue; when it
// returns nil the trigger survives a crash of the daemon, so a caller may
// answer 2xx. A delivery already accepted queues nothing: the error wraps
// store.ErrDuplicate and the ID is the execution the first one queued.
//
// In superseded mode, queued executions of the same run (pipeline.SameRun:
// trigger kind, branch, pull request) are superseded by the new one, and
// so is one of them waiting at an approval; other runs are never touched
// (a pull request whose head branch is named main leaves main's runs alone).
func (s *Server) Enqueue(ctx context.Context, t pipeline.Trigger, d store.Delivery) (string, error) {
	s.setDefaults()
	t.Project, t.Repo = s.Config.Project, s.Repo
	if t.ConfigPath == "" {
		t.ConfigPath = s.ConfigPath
	}
	if t.Commit == "" {
		c, err := s.Resolve(ctx, s.Repo, t.Branch)
		if err != nil {
			return "", err
		}
		t.Commit = c
	}
	// A branch the daemon's own cutover.yaml leaves out of
	// pipeline.trusted_branches runs untrusted (Engine.Run decides it the
	// same way): recorded now, the queue shows it too (pipeline.TriggerLabel),
	// and so does a run superseded before it started. A retry's kind, and
	// so its trust, is resolved when it runs.
	if t.Kind != pipeline.TriggerRetry && s.Engine != nil && s.Engine.BranchUntrusted(t) {
		t.UntrustedBranch = true
	}
	x := pipeline.QueuedExecution(t, time.Now())
	// A resumption supersedes nothing: it runs an older commit again, and a
	// newer one of the branch queued meanwhile must still run.
	supersede := s.Config.EffectivePipeline().Mode != config.ModeQueued && d.Source != pipeline.ResumeSource
	var replace, waiting []store.Execution
	if supersede {
		active, err := s.Store.ActiveExecutions(ctx, s.Config.Project)
		if err != nil {
			return "", err
		}
		for _, a := range active {
			at, err := pipeline.QueuedTrigger(a)
			if err != nil || !pipeline.SameRun(at, pipeline.Trigger{Kind: x.Trigger, Branch: t.Branch, PR: t.PR}) {
				continue
			}
			switch a.Status {
			case store.ExecutionQueued:
				replace = append(replace, a)
			case store.ExecutionWaiting:
				waiting = append(waiting, a)
			}
		}
	}
	ids := make([]string, len(replace))
	for i, a := range replace {
		ids[i] = a.ID
	}
	id, err := s.Store.QueueExecution(ctx, x, d, ids)
	if err != nil {
		return id, err
	}
	for _, a := range replace {
		s.Log.Info("superseded a queued execution", "execution", a.ID, "branch", a.Branch, "commit", a.Commit, "by", t.Commit)
	}
	for _, a := range waiting {
		_, _ = s.Store.AppendEvent(ctx, store.Event{Project: a.Project, Environment: pipeline.EventScope(a.ID),
			Kind: pipeline.CancelEvent, Message: pipeline.SupersededPrefix + " " + shortSHA(t.Commit)})
	}
	s.Log.Info("trigger queued", "execution", id, "kind", t.Kind, "branch", t.Branch, "commit", t.Commit, "delivery", d.ID)
	s.kick()
	return id, nil
}

// WebhookTrigger queues an authentic webhook's trigger (webhook.HandlerConfig.OnTrigger).
func (s *Server) WebhookTrigger(ctx context.Context, wt webhook.Trigger) error {
	kind := pipeline.TriggerPush
	if wt.Kind == webhook.KindPullRequest {
		kind = pipeline.TriggerPullRequest
	}
	t := pipeline.Trigger{Kind: kind, Branch: wt.Branch, Commit: wt.Commit, PR: wt.PRNumber, Base: wt.Base, Author: wt.Sender}
	if t.Commit != "" {
		// A branch runs only commits on it: refuse at once, with the reason.
		if err := pipeline.Admit(ctx, pipeline.Trigger{Kind: kind, Repo: s.Repo, Branch: t.Branch, Commit: t.Commit}); err != nil {
			return &webhook.IgnoredError{Reason: err.Error()}
		}
	}
	_, err := s.Enqueue(ctx, t, store.Delivery{Source: wt.Source, ID: wt.Delivery})
	if errors.Is(err, store.ErrDuplicate) {
		return fmt.Errorf("%w: %v", webhook.ErrDuplicate, err)
	}
	return err
}

func shortSHA(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	return c
}

func (s *Server) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// work starts every queued execution of the project, each in its own
// goroutine (the engine's stage locks decide who goes first), until ctx
// ends. Then running executions get Grace to finish before they are
// cancelled (the store records them cancelled); what is still queued stays
// queued for the next start.
func (s *Server) work(ctx context.Context) {
	var wg sync.WaitGroup
	running := map[string]context.CancelFunc{}
	var mu sync.Mutex
	for {
		queued, err := s.Store.FindExecutions(ctx, store.ExecutionFilter{Project: s.Config.Project, Status: store.ExecutionQueued})
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("reading the queue", "err", err)
		}
		for i := len(queued) - 1; i >= 0; i-- { // oldest first
			x := queued[i]
			mu.Lock()
			_, started := running[x.ID]
			mu.Unlock()
			if started || ctx.Err() != nil {
				continue
			}
			t, err := pipeline.QueuedTrigger(x)
			if err != nil {
				s.Log.Warn("a queued execution cannot run", "execution", x.ID, "err", err)
				x.Status, x.Error = store.ExecutionFailed, err.Error()
				_, _ = s.Store.UpdateExecution(ctx, x, x.Generation) // a conflict: someone else decided
				continue
			}
			runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			mu.Lock()
			running[x.ID] = cancel
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { mu.Lock(); delete(running, x.ID); mu.Unlock(); cancel() }()
				done, err := s.Engine.Run(runCtx, t)
				switch {
				case errors.Is(err, pipeline.ErrClaimed):
					s.Log.Info("queued execution not started", "execution", x.ID, "reason", err)
				case err != nil:
					s.Log.Warn("execution did not run", "execution", x.ID, "branch", t.Branch, "commit", t.Commit, "err", err)
				default:
					s.Log.Info("execution finished", "execution", done.ID, "status", done.Status)
				}
			}()
		}
		select {
		case <-ctx.Done():
			s.stopRunning(&wg, &mu, running)
			return
		case <-s.wake:
		case <-time.After(rescan):
		}
	}
}

func (s *Server) stopRunning(wg *sync.WaitGroup, mu *sync.Mutex, running map[string]context.CancelFunc) {
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	mu.Lock()
	n := len(running)
	mu.Unlock()
	if n > 0 {
		s.Log.Info("stopping: letting running executions finish", "running", n, "grace", s.Grace)
	}
	select {
	case <-all:
		return
	case <-time.After(s.Grace):
	}
	mu.Lock()
	for _, cancel := range running {
		cancel()
	}
	mu.Unlock()
	<-all
}

// resumeInterrupted takes over the executions a previous daemon left
// running or waiting, unless their owner still runs (a foreground `cutover
// run`, another daemon): it ends the processes they left and removes their
// workspaces (Engine.Recover), then queues them again from the stage they
// were in, reusing the images they built.
func (s *Server) resumeInterrupted(ctx context.Context) {
	active, err := s.Store.ActiveExecutions(ctx, s.Config.Project)
	if err != nil {
		s.Log.Warn("reading interrupted executions", "err", err)
		return
	}
	for _, x := range active {
		if x.Status == store.ExecutionQueued {
			continue // work starts it
		}
		if pipeline.OwnerAlive(x) {
			s.Log.Info("leaving an execution to its owner, which still runs", "execution", x.ID, "owner_pid", x.OwnerPID, "owner_host", x.OwnerHost)
			continue
		}
		rec, err := s.Engine.Recover(ctx, x)
		if err != nil {
			s.Log.Warn("recovering an interrupted execution", "execution", x.ID, "err", err)
			continue
		}
		switch {
		case rec.Requeued:
			s.Log.Info("queued again an execution interrupted before its first stage", "execution", x.ID, "processes_killed", rec.Killed)
			continue
		case rec.Resume == nil:
			s.Log.Info("an interrupted execution was cancelled meanwhile: not resumed", "execution", x.ID, "processes_killed", rec.Killed)
			continue
		}
		// Queued first, once (the delivery names x), then x is marked: a
		// kill -9 between the two leaves x to the next start's recovery,
		// which finds its resumption queued.
		id, err := s.Enqueue(ctx, *rec.Resume, store.Delivery{Source: pipeline.ResumeSource, ID: x.ID})
		if err != nil && !errors.Is(err, store.ErrDuplicate) {
			s.Log.Warn("resuming an interrupted execution", "execution", x.ID, "err", err)
			continue
		}
		if err := s.Engine.MarkResumed(ctx, rec); err != nil {
			s.Log.Warn("recording an interrupted execution as resumed", "execution", x.ID, "as", id, "err", err)
		}
		s.Log.Info("resuming an interrupted execution", "execution", x.ID, "as", id, "stage", rec.Resume.FromStage, "processes_killed", rec.Killed)
	}
}

// poll watches the environments' branches for new commits.
func (s *Server) poll(ctx context.Context) {
	p := s.Config.EffectivePipeline()
	if p.Source == nil || p.Source.Poll.Std() <= 0 {
		return
	}
	seen := map[string]string{}
	t := time.NewTicker(p.Source.Poll.Std())
	defer t.Stop()
	for {
		for _, name := range s.Config.EnvironmentNames() {
			branch := s.Config.Environments[name].Branch
			if branch == "" {
				continue
			}
			commit, err := s.Resolve(ctx, s.Repo, branch)
			if err != nil {
				s.Log.Warn("polling", "branch", branch, "err", err)
				continue
			}
			if prev, ok := seen[branch]; ok && prev != commit {
				if _, err := s.Enqueue(ctx, pipeline.Trigger{Kind: pipeline.TriggerPoll, Branch: branch, Commit: commit}, store.Delivery{}); err != nil {
					s.Log.Warn("queueing a polled commit", "branch", branch, "err", err)
				}
			}
			seen[branch] = commit
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

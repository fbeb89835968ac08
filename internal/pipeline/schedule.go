package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/short"
)

// stageLocks admits one execution at a time into each stage of a project,
// as CodePipeline does: executions of one Engine run concurrently, each in
// its own stage, so one waiting at an approval holds only its stage (a
// develop push still reaches staging, a pull request still builds).
//
// An execution that finds its next stage taken waits at the entrance.
// In superseded mode, a newer execution of the same trigger kind and
// branch that arrives at the same entrance replaces the waiting one (which
// ends superseded); runs of another kind or branch never supersede each
// other (a pull request whose head branch is named main leaves a main push
// alone), and neither do two pull requests (SameRun). In queued mode, and between kinds and branches, the entrance is
// first come, first served.
//
// The zero value is ready to use; it is safe for concurrent use.
type stageLocks struct {
	mu      sync.Mutex
	held    map[string]string // stage key → execution inside
	waiting map[string][]*stageWaiter
}

type stageWaiter struct {
	exec, kind, branch, commit string
	pr                         int // pull requests: two forks may both name their branch main
	granted                    bool
	ready                      chan struct{} // closed when granted
	superseded                 chan string   // receives the superseding commit
}

func stageKey(project, stage string) string { return project + "/" + stage }

// acquire waits until w may enter the stage key, or fails with an
// errCancelled error when ctx ends or a newer run supersedes w. onWait is
// called (once, without the lock) when w has to wait, with the execution
// inside.
func (l *stageLocks) acquire(ctx context.Context, key string, w *stageWaiter, supersede bool, onWait func(holder string)) error {
	l.mu.Lock()
	if l.held == nil {
		l.held, l.waiting = map[string]string{}, map[string][]*stageWaiter{}
	}
	holder, taken := l.held[key]
	if !taken && len(l.waiting[key]) == 0 {
		l.held[key] = w.exec
		l.mu.Unlock()
		return nil
	}
	w.ready, w.superseded = make(chan struct{}), make(chan string, 1)
	if supersede {
		kept := l.waiting[key][:0]
		for _, o := range l.waiting[key] {
			if o.kind == w.kind && o.branch == w.branch && o.pr == w.pr {
				o.superseded <- w.commit
				continue
			}
			kept = append(kept, o)
		}
		l.waiting[key] = kept
	}
	l.waiting[key] = append(l.waiting[key], w)
	l.mu.Unlock()
	if onWait != nil {
		onWait(holder)
	}
	select {
	case <-w.ready:
		return nil
	case by := <-w.superseded:
		return fmt.Errorf("%w: %s %s", errCancelled, SupersededPrefix, short.SHA(by))
	case <-ctx.Done():
		l.mu.Lock()
		granted := w.granted
		if !granted {
			l.remove(key, w)
		}
		l.mu.Unlock()
		if granted {
			l.release(key, w.exec)
		}
		if cause := context.Cause(ctx); errors.Is(cause, errCancelled) {
			return cause
		}
		return fmt.Errorf("%w: %v", errCancelled, ctx.Err())
	}
}

func (l *stageLocks) remove(key string, w *stageWaiter) {
	kept := l.waiting[key][:0]
	for _, o := range l.waiting[key] {
		if o != w {
			kept = append(kept, o)
		}
	}
	l.waiting[key] = kept
}

// release lets the next waiting execution into the stage, if any.
func (l *stageLocks) release(key, exec string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[key] != exec {
		return
	}
	if q := l.waiting[key]; len(q) > 0 {
		next := q[0]
		l.waiting[key] = q[1:]
		l.held[key] = next.exec
		next.granted = true
		close(next.ready)
		return
	}
	delete(l.held, key)
}

// enterAndRunStage waits for stage i to be free, runs it, and lets the
// next execution in. A skipped stage is not entered.
func (r *run) enterAndRunStage(ctx context.Context, i int) error {
	if r.stages[i].Status == StatusSkipped {
		return nil
	}
	name := r.stages[i].Name
	key := stageKey(r.exec.Project, name)
	w := &stageWaiter{exec: r.exec.ID, kind: r.exec.Trigger, branch: r.exec.Branch, commit: r.exec.Commit, pr: r.pr}
	err := r.e.stages.acquire(ctx, key, w, r.pipe.Mode != config.ModeQueued, func(holder string) {
		r.setStage(i, func(s *StageState) { s.Reason = "waiting for execution " + holder + " to leave the stage" })
		r.save(ctx)
		r.logf("execution", "stage %s is taken by execution %s: waiting to enter it", name, holder)
	})
	if err != nil {
		r.setStage(i, func(s *StageState) {
			s.Status, s.Reason = StatusCancelled, short.Line(err.Error())
			for k := range s.Actions {
				if s.Actions[k].Status == StatusPending {
					s.Actions[k].Status = StatusSkipped
				}
			}
		})
		return err
	}
	defer r.e.stages.release(key, r.exec.ID)
	r.setStage(i, func(s *StageState) { s.Reason = "" })
	return r.runStage(ctx, i)
}

// SameRun reports whether a newer trigger b may supersede an execution of
// trigger a: the same kind and branch, and for pull requests the same pull
// request (forks name their branches as they like).
func SameRun(a, b Trigger) bool {
	return a.Kind == b.Kind && a.Branch == b.Branch && a.PR == b.PR
}

// Package pipeline runs cutover's CI/CD pipeline for one commit: a fresh
// workspace at the exact commit, stages in order, actions of one stage in
// parallel by run order (build, test with JUnit reports, compose
// integration, deploy, verify, approval with evidence, command), variables
// shared between actions, secrets masked in every log line, and every
// state change persisted in the store so `cutover executions`, `logs` and
// `approve` see it from other processes.
package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/notify"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/short"
	"github.com/cutoverdev/cutover/internal/source"
	"github.com/cutoverdev/cutover/internal/store"
)

// Trigger kinds.
const (
	TriggerManual      = "manual"
	TriggerPush        = "push"
	TriggerPullRequest = "pull_request"
	TriggerPoll        = "poll"
	TriggerRetry       = "retry"
	// TriggerSchedule is a pipeline.schedule entry firing: the branch's head
	// runs as a push would, and its images are also tagged nightly-YYYYMMDD.
	TriggerSchedule = "schedule"
)

// Trigger is what starts an execution.
type Trigger struct {
	Kind       string `json:"kind"`
	Project    string `json:"project"`
	Repo       string `json:"repo"`        // local path or URL
	Branch     string `json:"branch"`      // the pushed branch, or a pull request's head branch
	Commit     string `json:"commit"`      // optional: the branch head when empty
	ConfigPath string `json:"config_path"` // cutover.yaml relative to the repository root
	PR         int    `json:"pr,omitempty"`
	// Author is who caused the trigger: the pusher a Git host's webhook
	// names, or the token or OS user that asked for it. An approval that
	// forbids the author refuses this name.
	Author string `json:"author,omitempty"`
	// Base is a pull request's base branch, whose pipeline definition it
	// runs; empty means the repository's default branch.
	Base string `json:"base,omitempty"`
	// RetriedFrom is the execution a retry runs again (its kind is kept).
	RetriedFrom string `json:"retried_from,omitempty"`
	// RetryOf and FromStage rerun an execution from a stage, reusing the
	// variables (image ids, digests) its earlier stages produced.
	RetryOf   string `json:"retry_of,omitempty"`
	FromStage string `json:"from_stage,omitempty"`
	// Execution is the ID of the queued execution (QueuedExecution) this
	// trigger runs: Run claims it instead of creating one.
	Execution string `json:"execution,omitempty"`
	// UntrustedBranch records that the daemon's pipeline.trusted_branches
	// left this run's branch out: a retry or resumption of it (RetryTrigger
	// copies the recorded trigger), even by an engine without the daemon's
	// configuration (`cutover retry`), runs untrusted too, as a retried pull
	// request stays a pull request.
	UntrustedBranch bool `json:"untrusted_branch,omitempty"`
}

// Pusher pushes a tagged local image and returns the manifest digest
// (the Docker runtime does, to the embedded registry).
type Pusher interface {
	Push(ctx context.Context, ref string) (string, error)
}

// Deployer deploys built images to an environment; the CLI wires it to the
// deployment controller (lease, reconcile, blue/green or rolling). source
// is the revision's provenance, RevisionSource(commit).
type Deployer func(ctx context.Context, cfg *config.Config, env string, images map[string]string, source string, logf func(string)) (store.Deployment, error)

// Engine runs executions. Its fields are set once; Run may be called from
// several goroutines (the daemon) for different executions.
type Engine struct {
	// Trusted is the daemon's own cutover.yaml (loaded from its checkout,
	// not from the commit an execution runs): which branch deploys which
	// environment is read from it, so a commit of another branch cannot
	// deploy an environment by editing its own copy. Nil (a foreground
	// `cutover run`, whose operator is trusted): the run's configuration.
	Trusted  *config.Config
	Store    *store.Store
	Runtime  *docker.Runtime
	Home     string // workspaces live in Home/workspaces/<execution>
	Deploy   Deployer
	Evidence func(ctx context.Context, cfg *config.Config, env, revision string) any // approval evidence of the environment promoted from, which ran the commit as revision ("": it did not)
	Registry string                                                                  // host:port of the embedded registry; "" = do not push
	Pusher   Pusher                                                                  // pushes tagged images to Registry
	Notify   notify.Options                                                          // delivery settings of pipeline.notifications
	Output   io.Writer                                                               // live log lines (cutover run); may be nil
	Log      *slog.Logger
	Getenv   func(string) string
	Poll     time.Duration // how often waits look for approvals and cancellation (default 100ms)

	outMu    sync.Mutex
	stages   stageLocks // one execution per stage at a time, across the Runs of this Engine
	defaults sync.Once  // Getenv, Log and Poll filled in once: Runs go on at once
}

// run is one execution in progress.
type run struct {
	e       *Engine
	exec    store.Execution
	cfg     *config.Config
	pipe    *config.Pipeline
	ws      source.Workspace
	secrets *Secrets
	stages  []StageState
	// hard is the context Run was given (its end interrupts everything);
	// the context actions get also ends, with an errCancelled cause, when
	// the execution is cancelled or superseded. Deployments run on hard and
	// are stopped by a request instead (deployStoppable).
	hard context.Context
	pr   int // the pull request of a pull_request trigger
	// untrusted is the run of a pull request, or of a push to a branch the
	// daemon's pipeline.trusted_branches leaves out: see trust.go. who names
	// it in messages ("pull request", "untrusted branch feature-x").
	untrusted  bool
	who        string
	kind       string   // the resolved trigger kind (never retry)
	author     string   // Trigger.Author: who caused the execution
	secretsEnv []string // NAME=value of the secrets its commands get

	mu       sync.Mutex // guards exec, stages, vars and built
	vars     map[string]string
	built    []string             // the IDs of the images this run built: its own builds may read them
	notifier *notify.Notifier     // from pipeline.notifications, once the config is loaded
	status   *notify.CommitStatus // from pipeline.commit_status, once the config is loaded

	// trustedCompose: an untrusted run's compose files of integration
	// actions as its base branch has them (by the action's path), read when
	// the run starts: the workspace's copies are the pull request's
	// commands' to rewrite.
	trustedCompose map[string][]byte
}

// TriggerVar is the variable (not exported to commands) that records an
// execution's trigger, for `cutover retry`.
const TriggerVar = "_trigger"

// NewExecutionID returns a sortable, unique execution id.
func NewExecutionID(now time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return "x-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// recorded is t as an execution stores it (and the API serves it): its
// repository without the credentials a URL may carry
// (https://user:TOKEN@host/...). A run uses t itself.
func (t Trigger) recorded() Trigger {
	t.Repo = source.Redact(t.Repo)
	return t
}

// QueuedExecution is the execution record of a trigger accepted but not
// started (store.QueueExecution persists it; Run with t.Execution set to
// its ID claims it). t must have its commit.
func QueuedExecution(t Trigger, now time.Time) store.Execution {
	if t.Kind == "" {
		t.Kind = TriggerManual
	}
	t.Execution = NewExecutionID(now)
	trig, _ := json.Marshal(t.recorded())
	vars, _ := json.Marshal(map[string]string{TriggerVar: string(trig)})
	return store.Execution{
		ID: t.Execution, Project: t.Project, Pipeline: "main", Trigger: t.Kind,
		Branch: t.Branch, Commit: t.Commit, Status: store.ExecutionQueued, Variables: vars, CreatedAt: now,
	}
}

// QueuedTrigger reads back the trigger of an execution QueuedExecution made
// (or Run recorded).
func QueuedTrigger(x store.Execution) (Trigger, error) {
	var vars map[string]string
	var t Trigger
	if err := json.Unmarshal(x.Variables, &vars); err != nil {
		return t, fmt.Errorf("execution %s: unreadable variables: %v", x.ID, err)
	}
	if err := json.Unmarshal([]byte(vars[TriggerVar]), &t); err != nil {
		return t, fmt.Errorf("execution %s: unreadable trigger: %v", x.ID, err)
	}
	t.Execution = x.ID
	return t, nil
}

// TriggerLabel is how an execution's trigger is shown: its kind, and
// "untrusted" before it when the daemon's pipeline.trusted_branches left
// its branch out (it ran as a pull request does: confined, without
// secrets, never deploying).
func TriggerLabel(x store.Execution) string {
	if UntrustedBranchRun(x) {
		return "untrusted " + x.Trigger
	}
	return x.Trigger
}

// UntrustedBranchRun reports whether execution x runs a branch the
// daemon's pipeline.trusted_branches left out, as its recorded trigger says.
func UntrustedBranchRun(x store.Execution) bool {
	t, err := QueuedTrigger(x)
	return err == nil && t.UntrustedBranch
}

// ErrClaimed is returned by Run for a queued execution that another runner
// claimed first, or that was superseded or cancelled before it started.
var ErrClaimed = errors.New("the execution is no longer queued")

// Run executes the pipeline for t and returns the finished execution. A
// failed action fails the execution (the returned error is nil: the
// execution's status says it); err is for failures to run at all.
//
// With t.Execution set, Run claims that queued execution (its generation
// guards against a second runner) and records this process as its owner;
// otherwise it creates a new one owned by this process.
func (e *Engine) Run(ctx context.Context, t Trigger) (store.Execution, error) {
	// Once: the daemon runs executions at once on one Engine, and each Run
	// wrote Poll (race detector, two executions started together).
	e.defaults.Do(func() {
		if e.Getenv == nil {
			e.Getenv = os.Getenv
		}
		if e.Log == nil {
			e.Log = slog.Default()
		}
		if e.Poll <= 0 {
			e.Poll = 100 * time.Millisecond
		}
	})
	if t.Kind == "" {
		t.Kind = TriggerManual
	}
	if t.ConfigPath == "" {
		t.ConfigPath = "cutover.yaml"
	}
	if t.Commit == "" {
		c, err := source.Resolve(ctx, t.Repo, t.Branch)
		if err != nil {
			return store.Execution{}, err
		}
		t.Commit = c
	}
	t, err := e.resolveKind(ctx, t)
	if err == nil {
		err = Admit(ctx, t)
	}
	if err != nil {
		return e.refuseQueued(ctx, t, err)
	}
	untrusted, who := e.untrusted(t)
	if untrusted && t.Kind != TriggerPullRequest {
		t.Base = "" // an untrusted branch runs the default branch's definition
		t.UntrustedBranch = true
	}
	if t.Kind == TriggerPullRequest && t.Base != "" && e.Trusted != nil && !e.Trusted.Pipeline.TrustsBranch(t.Base) {
		// A base branch the daemon does not trust is anyone's who may push
		// a branch: its definition (commit_status's api_url and token_env,
		// which the daemon itself acts on) is not a trusted one. The pull
		// request runs the default branch's, as an untrusted branch does.
		t.Base = ""
	}
	trig, _ := json.Marshal(t.recorded())
	r := &run{e: e, vars: map[string]string{TriggerVar: string(trig)}, hard: ctx, pr: t.PR, untrusted: untrusted, who: who, kind: t.Kind, author: t.Author}
	exec, err := e.claim(ctx, t, trig)
	if err != nil {
		return exec, err
	}
	r.exec = exec
	actx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	watching := make(chan struct{})
	go func() { defer close(watching); r.watchCancel(actx, stop) }()
	r.logf("execution", "execution %s: %s of %s at %s", exec.ID, t.Kind, t.Branch, short.SHA(t.Commit))
	runErr := r.execute(actx, t)
	if cause := context.Cause(actx); runErr != nil && errors.Is(cause, errCancelled) {
		runErr = cause // the cancel's own words, whatever the interrupted action said
	}
	stop(nil)
	<-watching
	return r.finish(ctx, runErr)
}

// claim creates the execution of t, or takes over the queued one t names,
// as running and owned by this process.
// refuseQueued ends a queued execution that may not run (a retry whose
// origin is unknown, a commit that is not on its branch) as failed, with
// the reason, so that the queue does not offer it again; a trigger with no
// queued execution just gets the error.
func (e *Engine) refuseQueued(ctx context.Context, t Trigger, refusal error) (store.Execution, error) {
	if t.Execution == "" {
		return store.Execution{}, refusal
	}
	x, err := e.Store.GetExecution(ctx, t.Execution)
	if err != nil || x.Status != store.ExecutionQueued {
		return x, refusal
	}
	x.Status, x.Error = store.ExecutionFailed, refusal.Error()
	if _, err := e.Store.UpdateExecution(ctx, x, x.Generation); err != nil {
		return x, errors.Join(refusal, err)
	}
	return x, refusal
}

func (e *Engine) claim(ctx context.Context, t Trigger, trig []byte) (store.Execution, error) {
	host, _ := os.Hostname()
	vars, _ := json.Marshal(map[string]string{TriggerVar: string(trig)}) // what save writes, so QueuedTrigger reads it at any time
	x := store.Execution{
		ID: NewExecutionID(time.Now()), Project: t.Project, Pipeline: "main", Trigger: t.Kind,
		Branch: t.Branch, Commit: t.Commit, Status: store.ExecutionRunning, Variables: vars,
	}
	if t.Execution != "" {
		queued, err := e.Store.GetExecution(ctx, t.Execution)
		if err != nil {
			return queued, err
		}
		if queued.Status != store.ExecutionQueued {
			return queued, fmt.Errorf("execution %s is %s: %w", queued.ID, queued.Status, ErrClaimed)
		}
		x = queued
		x.Status, x.Variables = store.ExecutionRunning, vars
		x.OwnerPID, x.OwnerHost = os.Getpid(), host
		if _, err := e.Store.UpdateExecution(ctx, x, queued.Generation); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return queued, fmt.Errorf("execution %s: %w", queued.ID, ErrClaimed)
			}
			return queued, err
		}
	} else {
		x.OwnerPID, x.OwnerHost = os.Getpid(), host
		if err := e.Store.CreateExecution(ctx, x); err != nil {
			return x, err
		}
	}
	return e.Store.GetExecution(ctx, x.ID)
}

func (r *run) execute(ctx context.Context, t Trigger) error {
	dir := r.e.workspace(r.exec.ID)
	ws, err := source.Checkout(ctx, t.Repo, t.Commit, dir)
	if err != nil {
		return err
	}
	r.ws = ws
	defer func() {
		if err := ws.Remove(); err != nil {
			r.e.Log.Warn("removing the workspace", "dir", dir, "err", err)
		}
	}()
	if r.cfg, err = r.loadConfig(ctx, t); err != nil {
		return err
	}
	r.pipe = r.cfg.EffectivePipeline()
	if err := r.loadSecrets(); err != nil {
		return err
	}
	if err := r.startNotifier(); err != nil {
		return err
	}
	if err := r.startCommitStatus(); err != nil {
		return err
	}
	r.notify(notify.ExecutionStarted, fmt.Sprintf("%s of %s at %s", t.Kind, t.Branch, short.SHA(t.Commit)))
	r.setBaseVars(t)
	if t.RetryOf != "" {
		if err := r.inheritVars(ctx, t.RetryOf); err != nil {
			return err
		}
	}
	r.stages = Plan(r.pipe, r.noDeploy(), t.Branch)
	if t.FromStage != "" {
		if err := r.skipBefore(t.FromStage); err != nil {
			return err
		}
	}
	r.save(ctx)
	for i := range r.stages {
		if err := r.enterAndRunStage(ctx, i); err != nil {
			for j := i + 1; j < len(r.stages); j++ {
				r.setStage(j, func(s *StageState) {
					if s.Status == StatusPending {
						s.Status, s.Reason = StatusSkipped, "an earlier stage failed"
						for k := range s.Actions {
							s.Actions[k].Status = StatusSkipped
						}
					}
				})
			}
			r.save(ctx)
			return err
		}
	}
	return nil
}

func (r *run) setBaseVars(t Trigger) {
	r.vars["CUTOVER_EXECUTION_ID"] = r.exec.ID
	r.vars["CUTOVER_COMMIT"] = t.Commit
	r.vars["CUTOVER_SHORT_SHA"] = short.SHA(t.Commit)
	r.vars["CUTOVER_BRANCH"] = t.Branch
	r.vars["CUTOVER_TRIGGER"] = t.Kind
	r.vars["CUTOVER_PROJECT"] = r.cfg.Project
	if t.Kind == TriggerPullRequest {
		r.vars["CUTOVER_PR"] = strconv.Itoa(t.PR)
	}
}

// inheritVars takes the image variables of the execution being retried.
func (r *run) inheritVars(ctx context.Context, id string) error {
	old, err := r.e.Store.GetExecution(ctx, id)
	if err != nil {
		return err
	}
	// The images the retried execution built are this run's own, as if its
	// skipped stages had built them again: an untrusted retry's builds and
	// integration may read them (OwnImages). Not those of an execution
	// that ran trusted: a branch no longer trusted, retrying its trusted
	// run from a later stage, would read what trusted builds put there.
	ot, _ := recordedTrigger(old)
	own := !r.untrusted || ot.Kind == TriggerPullRequest || ot.UntrustedBranch
	var stages []StageState
	_ = json.Unmarshal(old.Stages, &stages)
	for _, s := range stages {
		for _, a := range s.Actions {
			for k, v := range a.Outputs {
				r.vars[k] = v
				if own && a.Kind == config.ActionBuild && isImageIDVar(k) {
					r.built = append(r.built, v)
				}
			}
		}
	}
	return nil
}

// isImageIDVar says whether a build's output k is the ID of the image it
// built (CUTOVER_IMAGE_<SERVICE>), not one of its references.
func isImageIDVar(k string) bool {
	name, ok := strings.CutPrefix(k, "CUTOVER_IMAGE_")
	return ok && !strings.HasPrefix(name, "REF_") && !strings.HasPrefix(name, "DIGEST_REF_")
}

func (r *run) skipBefore(stage string) error {
	for i, s := range r.stages {
		if s.Name == stage {
			return nil
		}
		r.stages[i].Status, r.stages[i].Reason = StatusSkipped, "retried from stage "+stage
		for k := range r.stages[i].Actions {
			r.stages[i].Actions[k].Status = StatusSkipped
		}
	}
	var names []string
	for _, s := range r.pipe.Stages {
		names = append(names, s.Name)
	}
	return fmt.Errorf("--stage %s: no such stage (stages: %s)", stage, strings.Join(names, ", "))
}

// runStage runs one stage's actions, those of one run order in parallel.
func (r *run) runStage(ctx context.Context, i int) error {
	if r.stages[i].Status == StatusSkipped {
		return nil
	}
	now := time.Now().UTC()
	r.setStage(i, func(s *StageState) { s.Status, s.Started = StatusRunning, &now })
	r.save(ctx)
	spec := r.pipe.Stages[i]
	orders := map[int][]int{}
	for j, a := range spec.Actions {
		orders[a.RunOrder] = append(orders[a.RunOrder], j)
	}
	keys := make([]int, 0, len(orders))
	for k := range orders {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var stageErr error
	for _, order := range keys {
		var wg sync.WaitGroup
		errs := make([]error, len(spec.Actions))
		for _, j := range orders[order] {
			if r.stages[i].Actions[j].Status == StatusSkipped {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[j] = r.runAction(ctx, i, j, spec.Actions[j])
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			stageErr = err
			break
		}
	}
	if stageErr == nil {
		stageErr = r.afterStage(ctx, spec)
	}
	end := time.Now().UTC()
	r.setStage(i, func(s *StageState) {
		s.Finished = &end
		s.Status = StatusSucceeded
		if stageErr != nil {
			s.Status, s.Reason = StatusFailed, short.Line(stageErr.Error())
			if errors.Is(stageErr, errCancelled) {
				s.Status = StatusCancelled
			}
		}
		for k := range s.Actions {
			if s.Actions[k].Status == StatusPending {
				s.Actions[k].Status = StatusSkipped
			}
		}
	})
	r.save(ctx)
	return stageErr
}

func (r *run) runAction(ctx context.Context, i, j int, a config.Action) error {
	start := time.Now().UTC()
	r.setAction(i, j, func(s *ActionState) { s.Status, s.Started = StatusRunning, &start })
	r.save(ctx)
	r.logf(a.Name, "%s (%s) started", a.Name, a.Kind)
	res, err := r.dispatch(ctx, i, j, a)
	end := time.Now().UTC()
	r.setAction(i, j, func(s *ActionState) {
		s.Finished = &end
		s.Summary = res.summary
		s.Reports = res.reports
		s.Outputs = res.outputs
		s.Status = StatusSucceeded
		if err != nil {
			s.Status, s.Summary = StatusFailed, r.maskf(short.Line(err.Error()))
			if errors.Is(err, errCancelled) {
				s.Status = StatusCancelled
			}
		}
	})
	r.mu.Lock()
	for k, v := range res.outputs {
		r.vars[k] = v
	}
	r.mu.Unlock()
	if err != nil {
		r.logf(a.Name, "%s failed after %s: %v", a.Name, end.Sub(start).Round(time.Millisecond), err)
		return fmt.Errorf("%s: %w", a.Name, err)
	}
	r.logf(a.Name, "%s succeeded in %s%s", a.Name, end.Sub(start).Round(time.Millisecond), prefixed(" — ", res.summary))
	r.save(ctx)
	return nil
}

// result is what an action produced.
type result struct {
	summary string
	reports []Suite
	outputs map[string]string
}

func (r *run) dispatch(ctx context.Context, i, j int, a config.Action) (result, error) {
	if err := r.cancelled(ctx); err != nil {
		return result{}, err
	}
	switch a.Kind {
	case config.ActionBuild:
		return r.build(ctx, a)
	case config.ActionTest, config.ActionCommand:
		return r.commands(ctx, a, r.cfg.Dir())
	case config.ActionIntegration:
		return r.integration(ctx, a)
	case config.ActionDeploy:
		return r.deployStoppable(ctx, a)
	case config.ActionVerify:
		return r.verify(ctx, a)
	case config.ActionApproval:
		return r.approval(ctx, i, j, a)
	}
	return result{}, fmt.Errorf("action kind %q is not supported", a.Kind)
}

func (r *run) finish(ctx context.Context, runErr error) (store.Execution, error) {
	if runErr != nil && !errors.Is(runErr, errCancelled) && errors.Is(ctx.Err(), context.Canceled) {
		// The execution's context ended (daemon stop, Ctrl-C) while an action
		// was reading the store or the engine: that error is the cancellation
		// showing through, not the action failing.
		runErr = fmt.Errorf("%w: %v", errCancelled, runErr)
	}
	ctx = context.WithoutCancel(ctx)
	r.mu.Lock()
	r.exec.Status = "succeeded"
	if runErr != nil {
		r.exec.Status = "failed"
		r.exec.Error = r.maskf(short.Line(runErr.Error()))
		if errors.Is(runErr, errCancelled) {
			r.exec.Status = "cancelled"
			if strings.Contains(runErr.Error(), SupersededPrefix) {
				r.exec.Status = "superseded"
			}
		}
	}
	r.mu.Unlock()
	r.save(ctx)
	r.logf("execution", "execution %s %s%s", r.exec.ID, r.exec.Status, prefixed(": ", r.exec.Error))
	switch r.exec.Status {
	case "succeeded":
		r.notify(notify.ExecutionSucceeded, "all stages succeeded")
	case "failed":
		r.notify(notify.ExecutionFailed, r.exec.Error)
	default: // cancelled, superseded: no notification, but the commit's status must not stay pending
		r.reportStatus(r.exec.Status, r.exec.Error)
	}
	r.closeCommitStatus(ctx)
	if r.notifier != nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_ = r.notifier.Close(cctx) // deliveries get a bounded time; a failing notifier never fails the pipeline
		cancel()
	}
	exec, err := r.e.Store.GetExecution(ctx, r.exec.ID)
	if err != nil {
		return r.exec, err
	}
	return exec, nil
}

// maskf masks the pipeline's secrets in s, and what looks like a
// credential though no secret names it (a cutover token, a bearer header,
// a URL's user): for what the run stores, shows or sends (its log, its
// error and summaries, commit statuses, notifications).
func (r *run) maskf(s string) string {
	if r.secrets != nil {
		s = r.secrets.Mask(s)
	}
	return auth.Mask(s)
}

func (r *run) setStage(i int, f func(*StageState)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.stages[i])
}

func (r *run) setAction(i, j int, f func(*ActionState)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.stages[i].Actions[j])
}

// save persists the execution's state; a failed save is logged, not fatal:
// the next save carries the same state.
func (r *run) save(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stages, _ := json.Marshal(r.stages)
	vars, _ := json.Marshal(r.vars)
	r.exec.Stages, r.exec.Variables = r.secrets.MaskJSON(stages), r.secrets.MaskJSON(vars) // outputs, JUnit names, summaries
	gen, err := r.e.Store.UpdateExecution(context.WithoutCancel(ctx), r.exec, r.exec.Generation)
	if err != nil {
		r.e.Log.Warn("saving execution", "execution", r.exec.ID, "err", err)
		return
	}
	r.exec.Generation = gen
}

// logf records one line of an action's log, masked, in the store and on Output.
func (r *run) logf(action, format string, a ...any) {
	r.logLines(action, []string{fmt.Sprintf(format, a...)})
}

func (r *run) logLines(action string, lines []string) {
	for i := range lines {
		lines[i] = r.maskf(lines[i]) // the log is stored and served as it is masked here
	}
	if err := r.e.Store.AppendLog(context.Background(), r.exec.ID, action, lines); err != nil {
		r.e.Log.Warn("writing log", "execution", r.exec.ID, "err", err)
	}
	if r.e.Output != nil {
		r.e.outMu.Lock()
		for _, l := range lines {
			fmt.Fprintf(r.e.Output, "%s %-12s %s\n", time.Now().Format("15:04:05"), action, l)
		}
		r.e.outMu.Unlock()
	}
}

var errCancelled = errors.New("cancelled")

// cancelled reports a `cutover cancel` of this execution (an event in the
// store) or the end of ctx.
func (r *run) cancelled(ctx context.Context) error {
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errCancelled) {
			return cause
		}
		return fmt.Errorf("%w: %v", errCancelled, ctx.Err())
	}
	return cancelRequest(ctx, r.e.Store, r.exec.Project, r.exec.ID)
}

// SupersededPrefix starts the message of a cancel that a newer commit caused.
const SupersededPrefix = "superseded by"

// CancelEvent is the event kind `cutover cancel` appends in the execution's EventScope.
const CancelEvent = "execution.cancel"

// EventScope is the event log's environment field for events about one
// execution (its requests such as cancel), apart from environments' events.
func EventScope(executionID string) string { return "execution:" + executionID }

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// startNotifier builds the notification targets of pipeline.notifications,
// their URLs taken from the secrets.
func (r *run) startNotifier() error {
	var targets []notify.Target
	for i, n := range r.pipe.Notifications {
		t := notify.Target{Name: n.Name, Kind: n.Kind, URL: r.secrets.Value(n.URLSecret), Events: n.Events}
		if t.URL == "" && r.untrusted {
			continue // an untrusted run notifies only through secrets cutover's environment holds
		}
		if t.Name == "" {
			t.Name = fmt.Sprintf("%s-%d", n.Kind, i+1)
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("pipeline.notifications[%d]: %v", i, err)
		}
		targets = append(targets, t)
	}
	if len(targets) > 0 {
		o := r.e.Notify
		if o.Logger == nil {
			o.Logger = r.e.Log
		}
		r.notifier = notify.New(targets, o)
	}
	return nil
}

// notify sends an event; it never blocks the pipeline nor fails it.
func (r *run) notify(kind, message string) {
	r.reportStatus(kind, message)
	if r.notifier == nil {
		return
	}
	r.mu.Lock()
	x := r.exec
	r.mu.Unlock()
	r.notifier.Notify(context.Background(), notify.Event{Kind: kind, Execution: x.ID, Project: x.Project, Commit: x.Commit,
		Branch: x.Branch, Status: x.Status, Message: r.maskf(message), Time: time.Now()})
}

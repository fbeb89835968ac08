package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/cutoverdev/cutover/internal/notify"
)

// DefaultStatusTokenEnv is the variable of cutover's own environment that
// holds the token commit statuses are written with, unless
// pipeline.commit_status.token_env names another.
const DefaultStatusTokenEnv = "CUTOVER_GITHUB_TOKEN"

// startCommitStatus starts reporting the execution on its commit when the
// (trusted) configuration asks for it. The token comes from cutover's own
// environment, never from the pipeline's secrets or a command's
// environment, so a pull request's run reports its status without being
// able to read or redirect the token: its configuration is its base
// branch's.
func (r *run) startCommitStatus() error {
	cs := r.pipe.CommitStatus
	if cs == nil {
		return nil
	}
	env := cs.TokenEnv
	if env == "" {
		env = DefaultStatusTokenEnv
	}
	token := r.e.Getenv(env)
	if token == "" {
		r.logf("execution", "commit status: %s is not set in cutover's environment; no status is reported on GitHub", env)
		return nil
	}
	target := ""
	if cs.TargetURL != "" {
		target = cs.TargetURL + r.exec.ID
	}
	st, err := notify.NewCommitStatus(notify.CommitStatusOptions{
		Repository: cs.Repository, APIURL: cs.APIURL, Token: token, Context: cs.Context,
		TargetURL: target, Logger: r.e.Log,
	})
	if err != nil {
		return fmt.Errorf("pipeline.commit_status: %v", err)
	}
	r.status = st
	return nil
}

// reportStatus maps a pipeline event (or a final status) to the commit's state.
func (r *run) reportStatus(kind, message string) {
	if r.status == nil {
		return
	}
	r.mu.Lock()
	commit := r.exec.Commit
	r.mu.Unlock()
	var state, desc string
	switch kind {
	case notify.ExecutionStarted:
		state, desc = notify.StatusPending, "running"
	case notify.ApprovalNeeded:
		state, desc = notify.StatusPending, "waiting for approval: "+message
	case notify.ExecutionSucceeded:
		state, desc = notify.StatusSuccess, "all stages succeeded"
	case notify.ExecutionFailed:
		state, desc = notify.StatusFailure, "failed: "+message
	case "cancelled", "superseded":
		state, desc = notify.StatusError, kind+prefixed(": ", message)
	default:
		return
	}
	r.status.Report(commit, state, r.maskf(desc))
}

func (r *run) closeCommitStatus(ctx context.Context) {
	if r.status == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r.status.Close(cctx)
}

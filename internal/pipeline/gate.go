package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/integration"
	"github.com/cutoverdev/cutover/internal/lines"
	"github.com/cutoverdev/cutover/internal/notify"
	"github.com/cutoverdev/cutover/internal/short"
	"github.com/cutoverdev/cutover/internal/store"
)

// Evidence is what an approval request shows the approver.
type Evidence struct {
	Commit       string            `json:"commit"`
	Branch       string            `json:"branch"`
	Message      string            `json:"message"`
	Author       string            `json:"author,omitempty"`
	ChangedFiles []string          `json:"changed_files"`
	Images       map[string]string `json:"images"`
	Environment  string            `json:"environment"`  // the environment to deploy
	PromoteFrom  string            `json:"promote_from"` // where the evidence of running comes from
	// Promotion names the deployment of PromoteFrom whose images (by
	// digest) the deploy will run, or says why there is none.
	Promotion *Promotion `json:"promotion,omitempty"`
	Staging   any        `json:"staging,omitempty"`
}

// approval waits at the gate until someone approves or rejects with
// `cutover approve|reject EXECUTION`, or the timeout passes (a failure,
// as in CodePipeline, whose timeout is 7 days).
func (r *run) approval(ctx context.Context, i, j int, a config.Action) (result, error) {
	if err := r.mayDeploy(a.Environment); err != nil {
		return result{}, err
	}
	env := r.cfg.Environments[a.Environment]
	timeout := a.Timeout.Std()
	if timeout <= 0 && env.Approval != nil {
		timeout = env.Approval.Timeout.Std()
	}
	if timeout <= 0 {
		timeout = config.DefaultApprovalTimeout
	}
	images, promo, err := r.deployImages(ctx, a.Environment)
	if err != nil {
		return result{}, err
	}
	ev := Evidence{
		Commit: r.ws.Commit, Branch: r.vars["CUTOVER_BRANCH"], Message: r.ws.Message, Author: r.ws.Author,
		ChangedFiles: r.ws.ChangedFiles, Images: images, Environment: a.Environment, PromoteFrom: env.PromoteFrom,
		Promotion: promo,
	}
	if r.e.Evidence != nil && env.PromoteFrom != "" {
		rev := ""
		if promo != nil {
			rev = promo.Revision
		}
		ev.Staging = r.e.Evidence(ctx, r.cfg, env.PromoteFrom, rev)
	}
	raw, _ := json.Marshal(ev)
	raw = r.secrets.MaskJSON(raw)
	now := time.Now().UTC()
	stage := r.pipe.Stages[i].Name
	// The execution reads "waiting" before its approval can be seen pending,
	// so whoever finds the approval (API, dashboard, CLI) finds it waiting.
	r.setAction(i, j, func(s *ActionState) { s.Status = StatusWaiting })
	r.mu.Lock()
	r.exec.Status = "waiting"
	r.mu.Unlock()
	r.save(ctx)
	if err := r.e.Store.RequestApproval(ctx, store.Approval{
		Execution: r.exec.ID, Stage: stage, Action: a.Name, Status: "pending",
		RequestedAt: now, Expires: now.Add(timeout), Evidence: raw,
	}); err != nil {
		r.mu.Lock()
		r.exec.Status = "running"
		r.mu.Unlock()
		return result{}, err
	}
	r.logf(a.Name, "waiting for approval to deploy %s: `cutover approve %s --comment ...` or `cutover reject %s` (times out in %s)", a.Environment, r.exec.ID, r.exec.ID, timeout)
	r.notify(notify.ApprovalNeeded, fmt.Sprintf("deploy %s at %s: `cutover approve %s`", a.Environment, short.SHA(ev.Commit), r.exec.ID))
	defer func() {
		r.mu.Lock()
		r.exec.Status = "running"
		r.mu.Unlock()
	}()
	for {
		ap, err := r.e.Store.StageApproval(ctx, r.exec.ID, stage, a.Name)
		if err != nil {
			return result{}, err
		}
		switch ap.Status {
		case "approved":
			return result{summary: fmt.Sprintf("approved by %s%s", ap.DecidedBy, prefixed(": ", ap.Comment))}, nil
		case "rejected":
			return result{}, fmt.Errorf("rejected by %s%s", ap.DecidedBy, prefixed(": ", ap.Comment))
		}
		if time.Now().After(ap.Expires) {
			return result{}, fmt.Errorf("nobody approved within %s: the approval timed out", timeout)
		}
		if err := r.cancelled(ctx); err != nil {
			return result{}, err
		}
		select {
		case <-ctx.Done():
			return result{}, fmt.Errorf("%w: %v", errCancelled, ctx.Err())
		case <-time.After(r.e.Poll):
		}
	}
}

// integration starts the repository's docker-compose.yml under a project
// name unique to the execution, with the images this execution built, runs
// the checks, and always tears it all down.
func (r *run) integration(ctx context.Context, a config.Action) (result, error) {
	ctx, cancel := r.withTimeout(ctx, a)
	defer cancel()
	file := a.Compose
	if file == "" {
		file = "docker-compose.yml"
	}
	if err := config.Confined(r.cfg.Root(), filepath.Join(r.cfg.Dir(), file)); err != nil {
		return result{}, fmt.Errorf("compose: %v", err)
	}
	composeFile, workDir := filepath.Join(r.cfg.Dir(), file), ""
	if r.untrusted {
		// The base's compose file, not the workspace's copy: the pull
		// request's commands ran in the workspace before this action (or
		// run beside it) and may have written their own there.
		data, ok := r.trustedCompose[file]
		if !ok {
			return result{}, fmt.Errorf("compose: %s is not among the base branch's compose files read when the run started", file)
		}
		tmp, err := os.MkdirTemp("", "cutover-compose-")
		if err != nil {
			return result{}, err
		}
		defer os.RemoveAll(tmp)
		workDir = filepath.Dir(composeFile)
		composeFile = filepath.Join(tmp, filepath.Base(file))
		if err := os.WriteFile(composeFile, data, 0o600); err != nil {
			return result{}, err
		}
	}
	images := map[string]string{}
	r.mu.Lock()
	for _, name := range r.cfg.ServiceNames() {
		if id := r.vars["CUTOVER_IMAGE_"+envName(name)]; id != "" {
			images[name] = id
		}
	}
	own := slices.Clone(r.built)
	r.mu.Unlock()
	checks := []integration.Check{}
	specs := a.Checks
	if len(specs) == 0 {
		specs = r.defaultIntegrationChecks(ctx, composeFile, workDir)
	}
	for _, c := range specs {
		checks = append(checks, integration.Check{Service: c.Service, ContainerPort: c.Port, Path: c.Path,
			ExpectStatus: c.ExpectStatus, ExpectBody: c.ExpectBody, ExpectHeaders: c.ExpectHeaders})
	}
	output := &lines.Writer{F: func(l string) { r.logf(a.Name, "%s", l) }}
	res, err := integration.Run(ctx, r.e.Runtime, integration.Options{
		ComposeFile: composeFile,
		WorkingDir:  workDir,
		Name:        filepath.Join(r.cfg.Dir(), file), // the copy's messages name the workspace's file
		Project:     integrationProject(r.exec.ID),
		Images:      images,
		Checks:      checks,
		// The test service's exit code decides; services with a build section
		// the build stage did not build are built from inside the workspace.
		ExitCodeFrom: a.ExitCodeFrom,
		Root:         r.ws.Dir,
		Untrusted:    r.untrusted,
		OwnImages:    own,
		Timeout:      a.Timeout.Std(),
		Logger:       r.e.Log,
		Output:       output,
	})
	output.Flush()
	passed := 0
	for _, c := range res.Checks {
		if c.OK {
			passed++
		}
	}
	if err != nil {
		return result{}, err
	}
	if passed < len(res.Checks) {
		for _, c := range res.Checks {
			if !c.OK {
				return result{}, fmt.Errorf("integration check %s %s failed: %s", c.Service, c.Path, c.Detail)
			}
		}
	}
	summary := fmt.Sprintf("%d of %d integration checks passed on %s", passed, len(res.Checks), file)
	if a.ExitCodeFrom != "" {
		summary = fmt.Sprintf("test service %s exited 0; %s", a.ExitCodeFrom, summary)
	}
	return result{summary: summary}, nil
}

// defaultIntegrationChecks checks each service that is both in cutover.yaml
// and in the compose file: its health path on the container port compose
// gives it (which may differ from the image's, as the frontend's does),
// read with workDir (when set) as the compose working directory, as
// integration.Run reads it: an untrusted run's compose file is a copy
// outside the workspace, whose env_file and .env are in the workspace.
func (r *run) defaultIntegrationChecks(ctx context.Context, composeFile, workDir string) []config.Check {
	composed, _, err := config.FromComposeIn(ctx, composeFile, workDir)
	if err != nil {
		return nil // integration.Run reports the compose file's problem
	}
	var out []config.Check
	for _, name := range r.cfg.ServiceNames() {
		cs, ok := composed.Services[name]
		if !ok || cs.Port == 0 {
			continue
		}
		out = append(out, config.Check{Service: name, Port: cs.Port, HTTPCheck: config.HTTPCheck{Path: r.cfg.Services[name].Health.Path, ExpectStatus: 200}})
	}
	return out
}

package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
)

type runCmd struct {
	branch, commit, repo, kind, base string
	pr                               int
}

func newRunCmd(g *globals) *cobra.Command {
	c := &runCmd{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline once for a commit, in the foreground (for use inside any CI)",
		Long: "Checks the commit out into a fresh workspace and runs the pipeline of its cutover.yaml:\n" +
			"build, test, integration, deploy, verify, approval. A push to an environment's branch deploys\n" +
			"it; --kind pull_request builds and tests only. Exits 0 only when the execution succeeded.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			t, err := c.trigger(ctx, g)
			if err != nil {
				return err
			}
			s, err := openSession(ctx, g, "", true)
			if err != nil {
				return err
			}
			defer s.close()
			t.Project = s.cfg.Project
			eng, stop, err := s.engine(ctx, g)
			if err != nil {
				return err
			}
			defer stop()
			exec, err := eng.Run(ctx, t)
			if err != nil {
				return err
			}
			return reportExecution(g, exec)
		},
	}
	cmd.Flags().StringVar(&c.branch, "branch", "", "branch to run (default: the current branch of the repository)")
	cmd.Flags().StringVar(&c.commit, "commit", "", "commit to run (default: the head of --branch)")
	cmd.Flags().StringVar(&c.repo, "repo", "", "git repository, local path or URL (default: the one cutover.yaml is in)")
	cmd.Flags().StringVar(&c.kind, "kind", pipeline.TriggerManual, "trigger kind: manual, push or pull_request")
	cmd.Flags().IntVar(&c.pr, "pr", 0, "pull request number (with --kind pull_request)")
	cmd.Flags().StringVar(&c.base, "base", "", "a pull request's base branch, whose pipeline definition it runs (default: the repository's default branch)")
	return cmd
}

// trigger works out the repository, the config path inside it and the branch.
func (c *runCmd) trigger(ctx context.Context, g *globals) (pipeline.Trigger, error) {
	switch c.kind {
	case pipeline.TriggerManual, pipeline.TriggerPush, pipeline.TriggerPullRequest:
	default:
		return pipeline.Trigger{}, usageError{fmt.Sprintf("--kind %q: write manual, push or pull_request", c.kind)}
	}
	top, rel, err := repoOf(ctx, g)
	if err != nil {
		return pipeline.Trigger{}, err
	}
	t := pipeline.Trigger{Kind: c.kind, Repo: c.repo, Branch: c.branch, Commit: c.commit, ConfigPath: rel, PR: c.pr, Author: auth.LocalUser().Name, Base: c.base}
	if t.Repo == "" {
		t.Repo = top
	}
	if t.Branch == "" {
		if t.Branch, err = gitOut(ctx, top, "rev-parse", "--abbrev-ref", "HEAD"); err != nil || t.Branch == "HEAD" {
			return t, usageError{"--branch: the repository is on a detached HEAD; name the branch to run"}
		}
	}
	return t, nil
}

// repoOf finds the git repository cutover.yaml is in, and its path inside it.
func repoOf(ctx context.Context, g *globals) (top, rel string, err error) {
	abs, err := filepath.Abs(g.file)
	if err != nil {
		return "", "", err
	}
	top, err = gitOut(ctx, filepath.Dir(abs), "rev-parse", "--show-toplevel")
	if err != nil {
		return "", "", fmt.Errorf("%s is not inside a git repository (the pipeline checks out commits: `git init` and commit first)", g.file)
	}
	rel, err = filepath.Rel(top, abs)
	return top, rel, err
}

func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// engine wires the pipeline to this machine: the store, Docker, the
// embedded registry (started here; stop closes it), the deployment
// controller and the approval evidence.
func (s *session) engine(ctx context.Context, g *globals) (*pipeline.Engine, func(), error) {
	out := g.stderr
	if g.json() {
		out = io.Discard
	}
	reg, err := s.startRegistry(ctx)
	if err != nil {
		return nil, nil, err
	}
	eng := &pipeline.Engine{
		Store: s.store, Runtime: s.rt, Home: s.home, Output: out,
		Registry: reg.Addr(), Pusher: s.rt,
		Deploy:   s.deployer(g),
		Evidence: s.evidence,
		Getenv:   os.Getenv,
	}
	return eng, func() { _ = reg.Close(context.WithoutCancel(ctx)) }, nil
}

// deployer deploys an execution's images through the deployment controller,
// with the lease and reconciliation every deploy gets.
func (s *session) deployer(g *globals) pipeline.Deployer {
	return func(ctx context.Context, cfg *config.Config, env string, images map[string]string, source string, logf func(string)) (store.Deployment, error) {
		if p := cfg.Environments[env].Platform; p != config.PlatformLocal {
			return store.Deployment{}, fmt.Errorf("environment %s is on %s: the pipeline deploys local environments only for now (run `cutover deploy %s` for it, which pushes to ECR)", env, p, env)
		}
		lctx, release, err := deploy.Lock(ctx, s.store, cfg.Project, env, "cutover run", true)
		if err != nil {
			return store.Deployment{}, err
		}
		defer release()
		ws := &session{cfg: cfg, home: s.home, store: s.store, rt: s.rt, proxy: s.proxy}
		ctrl := ws.controller(g, env, 5*time.Minute)
		ctrl.Owner = pipeline.DeployOwner(ctx, ctrl.Owner) // who caused the execution, and the tag a cancel finds it by
		ctrl.Progress = func(ev deploy.Event) {
			if ev.Kind != "progress" {
				logf(fmt.Sprintf("%s: %s", ev.Phase, ev.Message))
			}
		}
		if d, err := ctrl.Reconcile(lctx, false); err != nil {
			return store.Deployment{}, err
		} else if d != nil {
			logf(fmt.Sprintf("reconciled deployment %s: %s", d.ID, d.Status))
		}
		if err := local.CheckPorts(lctx, s.proxy, cfg, env); err != nil {
			return store.Deployment{}, err
		}
		rev := local.NewRevision(cfg, env, images, source)
		if err := s.store.CreateRevision(lctx, rev); err != nil {
			return store.Deployment{}, err
		}
		return ctrl.Deploy(lctx, rev)
	}
}

// evidence is what an approval shows about the environment promoted from:
// its load balancer figures, target health, recent deployment events and
// the last log lines of its tasks.
func (s *session) evidence(ctx context.Context, cfg *config.Config, env string) any {
	type groupFigures struct {
		Group     string  `json:"group"`
		Requests  uint64  `json:"requests"`
		P95       float64 `json:"p95_seconds"`
		ErrorRate float64 `json:"error_rate"`
		Healthy   int     `json:"healthy"`
		Unhealthy int     `json:"unhealthy"`
	}
	ev := struct {
		Environment string              `json:"environment"`
		Figures     []groupFigures      `json:"load_balancer"`
		Events      []store.Event       `json:"events"`
		Deployments []store.Deployment  `json:"deployments"`
		Logs        map[string][]string `json:"logs"`
	}{Environment: env, Logs: map[string][]string{}}
	scope := local.Scope(cfg.Project, env) + "/"
	if st, err := s.proxy.Stats(ctx); err == nil {
		for _, gs := range st.Groups {
			if strings.HasPrefix(gs.Group, scope) {
				ev.Figures = append(ev.Figures, groupFigures{gs.Group, gs.Requests, gs.P95, gs.ErrorRate(), gs.Healthy, gs.Unhealthy})
			}
		}
	}
	if evs, err := s.store.ListEvents(ctx, store.EventFilter{Project: cfg.Project, Environment: env}); err == nil {
		if len(evs) > 20 {
			evs = evs[len(evs)-20:]
		}
		ev.Events = evs
	}
	if ds, err := s.store.ListDeployments(ctx, cfg.Project, env, 3); err == nil {
		ev.Deployments = ds
	}
	if tasks, err := s.rt.ListTasks(ctx, docker.Labels{Project: cfg.Project, Environment: env}); err == nil {
		for _, t := range tasks {
			if lines, err := s.rt.LastLogLines(ctx, t.ID, 10); err == nil {
				ev.Logs[t.Name] = lines
			}
		}
	}
	return ev
}

type executionFailed struct{ e store.Execution }

func (e executionFailed) Error() string {
	return fmt.Sprintf("execution %s %s: %s", e.e.ID, e.e.Status, e.e.Error)
}

func reportExecution(g *globals, e store.Execution) error {
	if err := g.print(e, func(w io.Writer) {
		fmt.Fprintf(w, "execution %s: %s (%s %s at %.7s)\n", e.ID, e.Status, e.Trigger, e.Branch, e.Commit)
		printStages(w, e)
	}); err != nil {
		return err
	}
	if e.Status != "succeeded" {
		return executionFailed{e}
	}
	return nil
}

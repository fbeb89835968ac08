package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/release"
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
			t, err := c.trigger(cmd.Context(), g)
			if err != nil {
				return err
			}
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				exec, err := m.Run(cmd.Context(), t, release.RunOptions{Output: g.pipelineOutput()})
				if err != nil {
					return err
				}
				return reportExecution(g, exec)
			})
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
	top, rel, err := release.RepoOf(ctx, g.file)
	if err != nil {
		return pipeline.Trigger{}, err
	}
	t := pipeline.Trigger{Kind: c.kind, Repo: c.repo, Branch: c.branch, Commit: c.commit, ConfigPath: rel, PR: c.pr, Author: auth.LocalUser().Name, Base: c.base}
	if t.Repo == "" {
		t.Repo = top
	}
	if t.Branch == "" {
		if t.Branch, err = release.CurrentBranch(ctx, top); err != nil || t.Branch == "HEAD" {
			return t, usageError{"--branch: the repository is on a detached HEAD; name the branch to run"}
		}
	}
	return t, nil
}

// pipelineOutput is where a foreground run's log lines go: stderr, or
// nowhere with --output json (stdout carries the result).
func (g *globals) pipelineOutput() io.Writer {
	if g.json() {
		return io.Discard
	}
	return g.stderr
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

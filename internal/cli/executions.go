package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/short"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
)

func printStages(w io.Writer, e store.Execution) {
	var stages []pipeline.StageState
	if json.Unmarshal(e.Stages, &stages) != nil {
		return
	}
	for _, st := range stages {
		fmt.Fprintf(w, "  %-20s %-10s %s\n", st.Name, st.Status, short.Terminal(st.Reason))
		for _, a := range st.Actions {
			fmt.Fprintf(w, "    %-18s %-10s %s\n", a.Name, a.Status, short.Terminal(a.Summary)) // a pull request's test report names suites
		}
	}
}

func newExecutionsCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "executions [EXECUTION]",
		Short: "List pipeline executions, or show one with its stages, actions and approval evidence",
		Args:  rangeArgs(0, 1, "at most one argument, EXECUTION"),
		RunE: g.withManager(func(ctx context.Context, m *release.Manager, args []string) error {
			if len(args) == 1 {
				x, err := m.Execution(ctx, args[0])
				return g.show(x, err, func(w io.Writer) {
					fmt.Fprintf(w, "execution %s: %s (%s %s at %.7s)%s\n", x.ID, x.Status, pipeline.TriggerLabel(x.Execution), short.Terminal(x.Branch), x.Commit, ifSet("  %s", short.Terminal(x.Error)))
					if x.Orphaned != "" {
						fmt.Fprintf(w, "  %s\n", x.Orphaned)
					}
					printStages(w, x.Execution)
					printApprovals(w, x.ID, x.Approvals, time.Now())
				})
			}
			list, err := m.Executions(ctx, limit)
			return g.show(list, err, func(w io.Writer) {
				fmt.Fprintln(w, "EXECUTION               TRIGGER         BRANCH        COMMIT   STATUS      STARTED")
				for _, e := range list {
					fmt.Fprintf(w, "%-23s %-15s %-13s %.7s  %-11s %s%s\n", e.ID, pipeline.TriggerLabel(e), short.Terminal(e.Branch), e.Commit, e.Status, e.CreatedAt.Local().Format("01-02 15:04:05"), ifSet("  %s", short.Terminal(e.Error)))
				}
			})
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "how many executions to list")
	return cmd
}

// ifSet is s in format, or nothing when s is empty.
func ifSet(format, s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf(format, s)
}

// newLogsCmd is `cutover logs EXECUTION` and `cutover logs ENV SERVICE`:
// an execution's log, or a service's logs on the platform its environment
// runs on (release.LogsTarget tells them apart).
func newLogsCmd(g *globals) *cobra.Command {
	var action string
	var o release.ServiceLogsOptions
	cmd := &cobra.Command{
		Use:   "logs EXECUTION | logs ENV SERVICE",
		Short: "Print an execution's log (secrets are masked), or a service's logs in an environment; --follow for more",
		Args:  rangeArgs(1, 2, "EXECUTION, or ENV SERVICE"),
	}
	cmd.RunE = g.withManager(func(ctx context.Context, m *release.Manager, args []string) error {
		env, service, err := m.LogsTarget(args)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(g.stdout)
		if env == "" {
			return m.Logs(ctx, args[0], release.LogOptions{Action: action, Follow: o.Follow}, func(l store.LogLine) {
				if g.json() {
					_ = enc.Encode(l)
				} else {
					// A pull request's commands wrote the line: its colours
					// reach the terminal, not its other escapes.
					fmt.Fprintf(g.stdout, "%s %-12s %s\n", l.Time.Local().Format("15:04:05"), l.Action, short.Terminal(l.Line))
				}
			})
		}
		o.SinceSet, o.TailSet, o.ActionSet = cmd.Flags().Changed("since"), cmd.Flags().Changed("tail"), cmd.Flags().Changed("action")
		return m.ServiceLogs(ctx, env, service, o, func(l release.LogLine) (err error) {
			switch {
			case g.json():
				err = enc.Encode(l)
			case l.Time.IsZero():
				_, err = fmt.Fprintf(g.stdout, "%-12s %s\n", l.Task, short.Terminal(l.Message))
			default:
				_, err = fmt.Fprintf(g.stdout, "%s %-12s %s\n", l.Time.Local().Format("15:04:05"), shortID(l.Task), short.Terminal(l.Message))
			}
			return err
		})
	})
	cmd.Flags().BoolVarP(&o.Follow, "follow", "F", false, "keep printing until the execution ends (ENV SERVICE: until interrupted)")
	cmd.Flags().StringVar(&action, "action", "", "only this action's lines")
	cmd.Flags().DurationVar(&o.Since, "since", 10*time.Minute, "ENV SERVICE: lines of this last period (on ecs 10m by default; locally all, or --tail's)")
	cmd.Flags().IntVar(&o.Tail, "tail", 100, "ENV SERVICE on the local platform: the last lines of each container (0 for all)")
	return cmd
}

func newDecideCmd(g *globals, approve bool) *cobra.Command {
	var comment string
	use, short, decide := "reject", "Reject the deployment an execution waits for (the execution fails)", (*release.Manager).Reject
	if approve {
		use, short, decide = "approve", "Approve the deployment an execution waits for", (*release.Manager).Approve
	}
	cmd := g.onArg(use, "EXECUTION", short, func(ctx context.Context, m *release.Manager, id string) error {
		a, err := decide(m, ctx, id, release.Decision{Who: auth.LocalUser(), Comment: comment})
		return g.show(a, err, func(w io.Writer) {
			fmt.Fprintf(w, "%s: execution %s, %s (by %s at %s)\n", a.Status, a.Execution, a.Action, a.DecidedBy, time.Now().Format("15:04:05"))
		})
	})
	cmd.Flags().StringVar(&comment, "comment", "", "why (recorded with the decision)")
	return cmd
}

func newCancelCmd(g *globals) *cobra.Command {
	return g.onArg("cancel", "EXECUTION", "Cancel a running or waiting execution (running commands are stopped, integration torn down)", func(ctx context.Context, m *release.Manager, id string) error {
		e, err := m.Cancel(ctx, id)
		return g.show(map[string]string{"execution": e.ID, "requested": "cancel"}, err, func(w io.Writer) {
			if e.Status == store.ExecutionCancelled || e.Status == store.ExecutionSuperseded {
				fmt.Fprintf(w, "execution %s %s (%s)\n", e.ID, e.Status, e.Error)
				return
			}
			fmt.Fprintf(w, "asked execution %s to cancel (a deployment in progress is stopped and rolled back)\n", e.ID)
		})
	})
}

func newRetryCmd(g *globals) *cobra.Command {
	var stage string
	cmd := g.onArg("retry", "EXECUTION", "Run an execution's commit again, from its first stage or from --stage", func(ctx context.Context, m *release.Manager, id string) error {
		exec, err := m.Retry(ctx, id, release.RetryOptions{Stage: stage, Output: g.pipelineOutput()})
		return reportExecution(g, exec, err)
	})
	cmd.Flags().StringVar(&stage, "stage", "", "start from this stage, reusing the images earlier stages built")
	return cmd
}

func newRunCmd(g *globals) *cobra.Command {
	var o release.TriggerOptions
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline once for a commit, in the foreground (for use inside any CI)",
		Long: "Checks the commit out into a fresh workspace and runs the pipeline of its cutover.yaml:\n" +
			"build, test, integration, deploy, verify, approval. A push to an environment's branch deploys\n" +
			"it; --kind pull_request builds and tests only. Exits 0 only when the execution succeeded.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := release.LocalTrigger(cmd.Context(), g.file, o)
			if err != nil {
				return err
			}
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				exec, err := m.Run(cmd.Context(), t, release.RunOptions{Output: g.pipelineOutput()})
				return reportExecution(g, exec, err)
			})
		},
	}
	cmd.Flags().StringVar(&o.Branch, "branch", "", "branch to run (default: the current branch of the repository)")
	cmd.Flags().StringVar(&o.Commit, "commit", "", "commit to run (default: the head of --branch)")
	cmd.Flags().StringVar(&o.Repo, "repo", "", "git repository, local path or URL (default: the one cutover.yaml is in)")
	cmd.Flags().StringVar(&o.Kind, "kind", pipeline.TriggerManual, "trigger kind: manual, push or pull_request")
	cmd.Flags().IntVar(&o.PR, "pr", 0, "pull request number (with --kind pull_request)")
	cmd.Flags().StringVar(&o.Base, "base", "", "a pull request's base branch, whose pipeline definition it runs (default: the repository's default branch)")
	return cmd
}

// pipelineOutput is where a foreground run's log lines go: stderr, or
// nowhere with --output json (stdout carries the result).
func (g *globals) pipelineOutput() io.Writer {
	if g.json() {
		return io.Discard
	}
	return g.stderr
}

func reportExecution(g *globals, e store.Execution, err error) error {
	return report(g.print, e, err, func(w io.Writer) {
		fmt.Fprintf(w, "execution %s: %s (%s %s at %.7s)\n", e.ID, e.Status, e.Trigger, e.Branch, e.Commit)
		printStages(w, e)
	})
}

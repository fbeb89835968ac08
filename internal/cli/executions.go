package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
)

func printStages(w io.Writer, e store.Execution) {
	var stages []pipeline.StageState
	if json.Unmarshal(e.Stages, &stages) != nil {
		return
	}
	for _, st := range stages {
		fmt.Fprintf(w, "  %-20s %-10s %s\n", st.Name, st.Status, st.Reason)
		for _, a := range st.Actions {
			fmt.Fprintf(w, "    %-18s %-10s %s\n", a.Name, a.Status, a.Summary)
		}
	}
}

func newExecutionsCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "executions [EXECUTION]",
		Short: "List pipeline executions, or show one with its stages and actions",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				if len(args) == 1 {
					e, err := m.Store.GetExecution(cmd.Context(), args[0])
					if err != nil {
						return err
					}
					return g.print(e, func(w io.Writer) {
						fmt.Fprintf(w, "execution %s: %s (%s %s at %.7s)%s\n", e.ID, e.Status, e.Trigger, e.Branch, e.Commit, suffix(e.Error))
						printStages(w, e)
					})
				}
				list, err := m.Store.ListExecutions(cmd.Context(), m.Config.Project, limit)
				if err != nil {
					return err
				}
				return g.print(list, func(w io.Writer) {
					fmt.Fprintln(w, "EXECUTION               TRIGGER       BRANCH        COMMIT   STATUS      STARTED")
					for _, e := range list {
						fmt.Fprintf(w, "%-23s %-13s %-13s %.7s  %-11s %s%s\n", e.ID, e.Trigger, e.Branch, e.Commit, e.Status, e.CreatedAt.Local().Format("01-02 15:04:05"), suffix(e.Error))
					}
				})
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "how many executions to list")
	return cmd
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return "  " + s
}

func newLogsCmd(g *globals) *cobra.Command {
	var follow bool
	var action string
	cmd := &cobra.Command{
		Use:   "logs EXECUTION",
		Short: "Print an execution's log (secrets are masked); --follow until it ends",
		Args:  exactArgs(1, "EXECUTION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withManager(ctx, g, func(m *release.Manager) error {
				if _, err := m.Store.GetExecution(ctx, args[0]); err != nil {
					return err
				}
				var after int64
				for {
					lines, err := m.Store.ListLogs(ctx, args[0], action, after, 1000)
					if err != nil {
						return err
					}
					for _, l := range lines {
						after = l.Seq
						if g.json() {
							_ = json.NewEncoder(g.stdout).Encode(l)
						} else {
							fmt.Fprintf(g.stdout, "%s %-12s %s\n", l.Time.Local().Format("15:04:05"), l.Action, l.Line)
						}
					}
					if len(lines) == 1000 {
						continue
					}
					if !follow {
						return nil
					}
					e, err := m.Store.GetExecution(ctx, args[0])
					if err != nil {
						return err
					}
					if !store.ExecutionActive(e.Status) {
						if more, _ := m.Store.ListLogs(ctx, args[0], action, after, 1); len(more) == 0 {
							return nil
						}
						continue
					}
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(300 * time.Millisecond):
					}
				}
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "F", false, "keep printing until the execution ends")
	cmd.Flags().StringVar(&action, "action", "", "only this action's lines")
	return cmd
}

func newDecideCmd(g *globals, approve bool) *cobra.Command {
	var comment string
	use := map[bool]string{true: "approve", false: "reject"}[approve]
	cmd := &cobra.Command{
		Use:   use + " EXECUTION",
		Short: map[bool]string{true: "Approve the deployment an execution waits for", false: "Reject the deployment an execution waits for (the execution fails)"}[approve],
		Args:  exactArgs(1, "EXECUTION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				decide := (*release.Manager).Reject
				if approve {
					decide = (*release.Manager).Approve
				}
				a, err := decide(m, cmd.Context(), args[0], release.Decision{Who: auth.LocalUser(), Comment: comment})
				if err != nil {
					return err
				}
				return g.print(a, func(w io.Writer) {
					fmt.Fprintf(w, "%s: execution %s, %s (by %s at %s)\n", a.Status, a.Execution, a.Action, a.DecidedBy, time.Now().Format("15:04:05"))
				})
			})
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why (recorded with the decision)")
	return cmd
}

func newCancelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel EXECUTION",
		Short: "Cancel a running or waiting execution (running commands are stopped, integration torn down)",
		Args:  exactArgs(1, "EXECUTION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				e, err := m.Cancel(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return g.print(map[string]string{"execution": e.ID, "requested": "cancel"}, func(w io.Writer) {
					fmt.Fprintf(w, "asked execution %s to cancel (a deployment in progress is stopped and rolled back)\n", e.ID)
				})
			})
		},
	}
}

func newRetryCmd(g *globals) *cobra.Command {
	var stage string
	cmd := &cobra.Command{
		Use:   "retry EXECUTION",
		Short: "Run an execution's commit again, from its first stage or from --stage",
		Args:  exactArgs(1, "EXECUTION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				exec, err := m.Retry(cmd.Context(), args[0], release.RetryOptions{Stage: stage, Output: g.pipelineOutput()})
				if err != nil {
					return err
				}
				return reportExecution(g, exec)
			})
		},
	}
	cmd.Flags().StringVar(&stage, "stage", "", "start from this stage, reusing the images earlier stages built")
	return cmd
}

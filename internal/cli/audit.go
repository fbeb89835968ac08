package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// auditedCommands are the commands that change something, by the action
// the audit log records them as.
var auditedCommands = map[string]string{
	"run": auth.ActionTrigger, "retry": auth.ActionRetry, "approve": auth.ActionApprove, "reject": auth.ActionReject,
	"cancel": auth.ActionCancel, "deploy": auth.ActionDeploy, "rollback": auth.ActionRollback,
	"stop": auth.ActionStop, "continue": auth.ActionContinue, "promote": auth.ActionPromote,
}

// auditCommands makes each audited command record, when it ends, who ran
// it (the OS user), what on which target, and how it ended.
func auditCommands(g *globals, root *cobra.Command) {
	for _, c := range root.Commands() {
		action, ok := auditedCommands[c.Name()]
		if !ok || c.RunE == nil {
			continue
		}
		run := c.RunE
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			target := commandTarget(cmd, args)
			if aerr := withHomeStore(cmd.Context(), g, func(st *store.Store) error {
				return auth.Record(cmd.Context(), st, auth.LocalUser(), action, target, err)
			}); aerr != nil {
				return fmt.Errorf("%s %s: cannot write the audit log: %v%s", cmd.Name(), target, aerr, suffix(errText(err)))
			}
			return err
		}
	}
}

// g.audit records a command's action with its outcome; err is passed
// through, or replaced by the failure to write the log.
func (g *globals) audit(ctx context.Context, st *store.Store, action, target string, err error) error {
	if aerr := auth.Record(ctx, st, auth.LocalUser(), action, target, err); aerr != nil {
		return fmt.Errorf("%s %s: cannot write the audit log: %v%s", action, target, aerr, suffix(errText(err)))
	}
	return err
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return "(the command itself: " + err.Error() + ")"
}

// commandTarget is the arguments and the flags set on the command line.
func commandTarget(cmd *cobra.Command, args []string) string {
	parts := append([]string{}, args...)
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			parts = append(parts, "--"+f.Name+"="+f.Value.String())
		}
	})
	return strings.Join(parts, " ")
}

func newAuditCmd(g *globals) *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:   "audit [--since DURATION|TIME]",
		Short: "Print the audit log: who triggered, approved, rejected, cancelled, deployed, rolled back, stopped, continued, or changed tokens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, err := auth.ParseSince(since, time.Now())
			if err != nil {
				return usageError{"--since: " + err.Error()}
			}
			return withHomeStore(cmd.Context(), g, func(st *store.Store) error {
				list, err := st.ListAudit(cmd.Context(), from, 0)
				if err != nil {
					return err
				}
				if list == nil {
					list = []store.AuditEntry{}
				}
				return g.print(list, func(w io.Writer) {
					fmt.Fprintln(w, "TIME                 WHO              ROLE      VIA      REMOTE                 ACTION         TARGET                    OUTCOME")
					for _, e := range list {
						fmt.Fprintf(w, "%-20s %-16s %-9s %-8s %-22s %-14s %-25s %s\n", e.Time.Local().Format("2006-01-02 15:04:05"),
							e.Actor, dash(e.Role), e.Via, dash(e.Remote), e.Action, dash(e.Target), e.Outcome)
					}
				})
			})
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only entries since a duration ago (24h) or a time (2026-12-01, RFC 3339)")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

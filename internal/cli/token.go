package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// withHomeStore opens the store of the state directory alone: tokens and
// the audit log belong to the daemon's home, not to one cutover.yaml.
func withHomeStore(ctx context.Context, g *globals, fn func(st *store.Store) error) error {
	home, err := g.homeDir()
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, filepath.Join(home, "cutover.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

// withHomeStore is a RunE that opens the state directory's store for fn.
func (g *globals) withHomeStore(fn func(ctx context.Context, st *store.Store, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		return withHomeStore(cmd.Context(), g, func(st *store.Store) error { return fn(cmd.Context(), st, args) })
	}
}

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage the API tokens of `cutover serve` (roles: viewer, deployer, approver, admin)",
		Long: "Every /v1 route of the daemon except /v1/health needs `Authorization: Bearer TOKEN`.\n" +
			"viewer reads; deployer also triggers, cancels, deploys and rolls back; approver also\n" +
			"approves and rejects; admin also manages tokens and reads the audit log. Only a token's\n" +
			"SHA-256 is stored: the token is shown once, when it is created.",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return cmd
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "create NAME --role viewer|deployer|approver|admin",
		Short: "Create a token and print it (once: it cannot be shown again)",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return usageError{"--role is required: one of viewer, deployer, approver, admin"}
			}
			return withHomeStore(cmd.Context(), g, func(st *store.Store) error {
				t, err := auth.CreateToken(cmd.Context(), st, auth.LocalUser(), args[0], role)
				if err := g.audit(cmd.Context(), st, auth.ActionTokenCreate, args[0]+" "+role, err); err != nil {
					return err
				}
				return g.print(t, func(w io.Writer) {
					fmt.Fprintf(w, "token %s (%s), shown this once: store it now\n%s\n", t.Name, t.Role, t.Token)
				})
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "viewer, deployer, approver or admin")
	return cmd
}

func newTokenListCmd(g *globals) *cobra.Command {
	var revoked bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tokens (names and roles; never the tokens themselves)",
		Args:  cobra.NoArgs,
		RunE: g.withHomeStore(func(ctx context.Context, st *store.Store, _ []string) error {
			list, err := st.ListTokens(ctx, revoked)
			if err != nil {
				return err
			}
			if list == nil {
				list = []store.Token{}
			}
			return g.print(list, func(w io.Writer) {
				fmt.Fprintln(w, "NAME                 ROLE       CREATED              BY          REVOKED")
				for _, t := range list {
					rev := "-"
					if t.RevokedAt != nil {
						rev = t.RevokedAt.Local().Format("2006-01-02 15:04:05")
					}
					fmt.Fprintf(w, "%-20s %-10s %-20s %-11s %s\n", t.Name, t.Role, t.CreatedAt.Local().Format("2006-01-02 15:04:05"), t.CreatedBy, rev)
				}
			})
		}),
	}
	cmd.Flags().BoolVar(&revoked, "revoked", false, "also list revoked tokens")
	return cmd
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token for good (the daemon refuses it at once)",
		Args:  exactArgs(1, "NAME"),
		RunE: g.withHomeStore(func(ctx context.Context, st *store.Store, args []string) error {
			t, err := auth.RevokeToken(ctx, st, args[0])
			if err := g.audit(ctx, st, auth.ActionTokenRevoke, args[0], err); err != nil {
				return err
			}
			return g.print(t, func(w io.Writer) { fmt.Fprintf(w, "revoked token %s (%s)\n", t.Name, t.Role) })
		}),
	}
}

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

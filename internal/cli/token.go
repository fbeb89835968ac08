package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// withStateHome is a RunE that opens the state directory's tokens and
// audit log for fn.
func (g *globals) withStateHome(fn func(ctx context.Context, h *release.Home, args []string) error) func(*cobra.Command, []string) error {
	return g.withHome(func(ctx context.Context, home string, args []string) error {
		h, err := release.OpenHome(ctx, home)
		if err != nil {
			return err
		}
		defer h.Close()
		return fn(ctx, h, args)
	})
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
		RunE: g.withStateHome(func(ctx context.Context, h *release.Home, args []string) error {
			t, err := h.CreateToken(ctx, args[0], role)
			return g.show(t, err, func(w io.Writer) {
				fmt.Fprintf(w, "token %s (%s), shown this once: store it now\n%s\n", t.Name, t.Role, t.Token)
			})
		}),
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
		RunE: g.withStateHome(func(ctx context.Context, h *release.Home, _ []string) error {
			list, err := h.ListTokens(ctx, revoked)
			return g.show(list, err, func(w io.Writer) {
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
		RunE: g.withStateHome(func(ctx context.Context, h *release.Home, args []string) error {
			t, err := h.RevokeToken(ctx, args[0])
			return g.show(t, err, func(w io.Writer) { fmt.Fprintf(w, "revoked token %s (%s)\n", t.Name, t.Role) })
		}),
	}
}

// auditedCommands are the commands that change something, by the action
// the audit log records them as (a subcommand by its path below the root).
var auditedCommands = map[string]string{
	"run": auth.ActionTrigger, "retry": auth.ActionRetry, "approve": auth.ActionApprove, "reject": auth.ActionReject,
	"cancel": auth.ActionCancel, "deploy": auth.ActionDeploy, "rollback": auth.ActionRollback,
	"stop": auth.ActionStop, "continue": auth.ActionContinue, "promote": auth.ActionPromote,
	"up": auth.ActionUp, "down": auth.ActionDown, "prune": auth.ActionPrune,
	"proxy stop": auth.ActionProxyStop, "proxy restart": auth.ActionProxyRestart,
	"secrets set": auth.ActionSecretSet, "secrets unset": auth.ActionSecretUnset,
}

// startRecorded are the audited commands that may run for minutes (a
// deployment, a pipeline run): they also record that they start, before
// they act, so one killed half way leaves who ran it on record.
var startRecorded = map[string]bool{"run": true, "deploy": true, "up": true, "down": true, "rollback": true}

// auditCommands makes each audited command record, when it ends, who ran
// it (the OS user), what on which target, and how it ended; the long ones
// also when they start.
func auditCommands(g *globals, root *cobra.Command) {
	var walk func(c *cobra.Command, path string)
	walk = func(c *cobra.Command, path string) {
		for _, sub := range c.Commands() {
			walk(sub, strings.TrimSpace(path+" "+sub.Name()))
		}
		action, ok := auditedCommands[path]
		if !ok || c.RunE == nil {
			return
		}
		run := c.RunE
		c.RunE = func(cmd *cobra.Command, args []string) error {
			target := commandTarget(cmd, args)
			if startRecorded[path] {
				if err := release.RecordCommandStart(cmd.Context(), g.home, path, action, target); err != nil {
					return err
				}
			}
			err := run(cmd, args)
			// An interrupted command (Ctrl-C, SIGTERM) is recorded too, with
			// its outcome: its context is cancelled, the audit log's is not.
			return release.RecordCommand(context.WithoutCancel(cmd.Context()), g.home, path, action, target, err)
		}
	}
	walk(root, "")
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
		RunE: g.withStateHome(func(ctx context.Context, h *release.Home, _ []string) error {
			list, err := h.Audit(ctx, since)
			return g.show(list, err, func(w io.Writer) {
				fmt.Fprintln(w, "TIME                 WHO              ROLE      VIA      REMOTE                 ACTION         TARGET                    OUTCOME")
				for _, e := range list {
					fmt.Fprintf(w, "%-20s %-16s %-9s %-8s %-22s %-14s %-25s %s\n", e.Time.Local().Format("2006-01-02 15:04:05"),
						auth.Printable(e.Actor), orDash(e.Role), e.Via, orDash(e.Remote), e.Action, orDash(auth.Printable(e.Target)), auth.Printable(e.Outcome)) // entries stored before Printable
				}
			})
		}),
	}
	cmd.Flags().StringVar(&since, "since", "", "only entries since a duration ago (24h, 1h30m) or a time (2026-12-01, 2026-12-01T15:04 local, 2026-12-01T15:04:05Z)")
	return cmd
}

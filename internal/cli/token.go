package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withHomeStore(cmd.Context(), g, func(st *store.Store) error {
				list, err := st.ListTokens(cmd.Context(), revoked)
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
			})
		},
	}
	cmd.Flags().BoolVar(&revoked, "revoked", false, "also list revoked tokens")
	return cmd
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token for good (the daemon refuses it at once)",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withHomeStore(cmd.Context(), g, func(st *store.Store) error {
				t, err := auth.RevokeToken(cmd.Context(), st, args[0])
				if err := g.audit(cmd.Context(), st, auth.ActionTokenRevoke, args[0], err); err != nil {
					return err
				}
				return g.print(t, func(w io.Writer) { fmt.Fprintf(w, "revoked token %s (%s)\n", t.Name, t.Role) })
			})
		},
	}
}

package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
)

func newHistoryCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history ENV",
		Short: "List the environment's deployments with outcome and reason, and its revisions",
		Args:  exactArgs(1, "ENV"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := openSession(ctx, g, args[0], false)
			if err != nil {
				return err
			}
			defer s.close()
			deps, err := s.store.ListDeployments(ctx, s.cfg.Project, args[0], limit)
			if err != nil {
				return err
			}
			revs, err := s.store.ListRevisions(ctx, s.cfg.Project, args[0], limit)
			if err != nil {
				return err
			}
			res := struct {
				Deployments []store.Deployment `json:"deployments"`
				Revisions   []store.Revision   `json:"revisions"`
			}{deps, revs}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintln(w, "DEPLOYMENT                STARTED   STRATEGY    REVISION        STATUS       REASON")
				for _, d := range deps {
					fmt.Fprintf(w, "%-25s %-9s %-11s %-15s %-12s %s\n", d.ID, d.CreatedAt.Local().Format("15:04:05"), d.Strategy, d.Revision, d.Status, d.Reason)
				}
				fmt.Fprintln(w, "\nREVISION        CREATED              SOURCE        SERVICES")
				for _, r := range revs {
					fmt.Fprintf(w, "%-15s %-20s %-13s", r.ID, r.CreatedAt.Local().Format("2006-01-02 15:04:05"), r.Source)
					for _, name := range sortedKeys(r.Services) {
						fmt.Fprintf(w, " %s=%s", name, shortImage(r.Services[name].Image))
					}
					fmt.Fprintln(w)
				}
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "how many deployments and revisions to list")
	return cmd
}

// shortImage shows an image id or a digest reference by its first 12 hex digits.
func shortImage(s string) string {
	if _, digest, ok := strings.Cut(s, "@sha256:"); ok {
		return "@" + shortTaskID(digest)
	}
	return shortTaskID(strings.TrimPrefix(s, "sha256:"))
}

package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/spf13/cobra"
)

func newHistoryCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history ENV",
		Short: "List the environment's deployments (date, duration, actor, outcome, reason) and revisions (source commit)",
		Long: "Lists deployments and revisions from the state store. It needs neither the Docker engine nor\n" +
			"the proxy, so it works while they are down.",
		Args: exactArgs(1, "ENV"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				res, err := m.History(cmd.Context(), args[0], limit)
				if err != nil {
					return err
				}
				return g.print(res, func(w io.Writer) {
					fmt.Fprintln(w, "DEPLOYMENT                STARTED              DURATION   ACTOR        STRATEGY    REVISION        STATUS       REASON")
					for _, d := range res.Deployments {
						fmt.Fprintf(w, "%-25s %-20s %-10s %-12s %-11s %-15s %-12s %s\n", d.ID, d.CreatedAt.Local().Format("2006-01-02 15:04:05"),
							d.Duration, d.Actor, d.Strategy, d.Revision, d.Status, d.Reason)
					}
					fmt.Fprintln(w, "\nREVISION        CREATED              SOURCE                        SERVICES")
					for _, r := range res.Revisions {
						fmt.Fprintf(w, "%-15s %-20s %-29s", r.ID, r.CreatedAt.Local().Format("2006-01-02 15:04:05"), r.Source)
						for _, name := range slices.Sorted(maps.Keys(r.Services)) {
							fmt.Fprintf(w, " %s=%s", name, shortImage(r.Services[name].Image))
						}
						fmt.Fprintln(w)
					}
				})
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "how many deployments and revisions to list")
	return cmd
}

// shortImage shows an image id or a digest reference by its first 12 hex digits.
func shortImage(s string) string {
	if _, digest, ok := strings.Cut(s, "@sha256:"); ok {
		return "@" + shortID(digest)
	}
	return shortID(strings.TrimPrefix(s, "sha256:"))
}

// shortID is the first 12 characters of a task, image or commit id.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

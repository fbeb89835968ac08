package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
)

// historyDeployment is a deployment as history shows it: who made it and how
// long it took, beside what the store records.
type historyDeployment struct {
	store.Deployment
	Actor    string `json:"actor"`
	Duration string `json:"duration"` // finished minus started; "running 1m2s" while in progress
}

func newHistoryCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history ENV",
		Short: "List the environment's deployments (date, duration, actor, outcome, reason) and revisions (source commit)",
		Long: "Lists deployments and revisions from the state store. It needs neither the Docker engine nor\n" +
			"the proxy, so it works while they are down.",
		Args: exactArgs(1, "ENV"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := openStoreSession(ctx, g, args[0])
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
			now := time.Now()
			res := struct {
				Deployments []historyDeployment `json:"deployments"`
				Revisions   []store.Revision    `json:"revisions"`
			}{Deployments: []historyDeployment{}, Revisions: revs}
			for _, d := range deps {
				res.Deployments = append(res.Deployments, historyDeployment{Deployment: d, Actor: actorOf(d.Owner), Duration: deploymentDuration(d, now)})
			}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintln(w, "DEPLOYMENT                STARTED              DURATION   ACTOR        STRATEGY    REVISION        STATUS       REASON")
				for _, d := range res.Deployments {
					fmt.Fprintf(w, "%-25s %-20s %-10s %-12s %-11s %-15s %-12s %s\n", d.ID, d.CreatedAt.Local().Format("2006-01-02 15:04:05"),
						d.Duration, d.Actor, d.Strategy, d.Revision, d.Status, d.Reason)
				}
				fmt.Fprintln(w, "\nREVISION        CREATED              SOURCE                        SERVICES")
				for _, r := range revs {
					fmt.Fprintf(w, "%-15s %-20s %-29s", r.ID, r.CreatedAt.Local().Format("2006-01-02 15:04:05"), r.Source)
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

// deploymentDuration is how long d took, rounded for reading, or how long it has
// been running so far.
func deploymentDuration(d store.Deployment, now time.Time) string {
	if d.FinishedAt != nil {
		return roundDuration(d.FinishedAt.Sub(d.CreatedAt)).String()
	}
	return "running " + roundDuration(now.Sub(d.CreatedAt)).String()
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}

// shortImage shows an image id or a digest reference by its first 12 hex digits.
func shortImage(s string) string {
	if _, digest, ok := strings.Cut(s, "@sha256:"); ok {
		return "@" + shortTaskID(digest)
	}
	return shortTaskID(strings.TrimPrefix(s, "sha256:"))
}

package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/spf13/cobra"
)

func newStatusCmd(g *globals) *cobra.Command {
	var watch time.Duration
	cmd := &cobra.Command{
		Use:   "status [ENV]",
		Short: "Show environments: revision, tasks and their health at the load balancer",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env := ""
			if len(args) == 1 {
				env = args[0]
			}
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				for {
					if watch > 0 && !g.json() {
						fmt.Fprint(g.stdout, "\033[H\033[2J")
					}
					out, err := m.Status(cmd.Context(), env)
					if err != nil {
						return err
					}
					if err := g.print(out, func(w io.Writer) { printStatus(w, out) }); err != nil || watch <= 0 {
						return err
					}
					select {
					case <-cmd.Context().Done():
						return nil
					case <-time.After(watch):
					}
				}
			})
		},
	}
	cmd.Flags().DurationVar(&watch, "watch", 0, "refresh every interval (e.g. 1s) until interrupted")
	return cmd
}

func printStatus(w io.Writer, out []release.Status) {
	var unread []string // the same for every local environment: said once
	for _, es := range out {
		for _, u := range es.Unread {
			if !slices.Contains(unread, u) {
				unread = append(unread, u)
			}
		}
		fmt.Fprintf(w, "%s: %s", es.Environment, es.Status)
		if es.Revision != "" {
			fmt.Fprintf(w, " (revision %s)", es.Revision)
		}
		fmt.Fprintln(w)
		if d := es.Deployment; d != nil {
			fmt.Fprintf(w, "  deployment %s: %s, phase %s, %d%% of traffic on revision %s", d.ID, d.Status, d.Phase, d.TrafficPercent, d.Revision)
			if d.Reason != "" {
				fmt.Fprintf(w, " (%s)", d.Reason)
			}
			fmt.Fprintln(w)
		}
		if p := es.Progress; p != nil && es.Deployment.Status == "in_progress" {
			fmt.Fprintf(w, "  step %d of %d (%s)", p.Step, p.Steps, p.Phase)
			if p.PhaseLeft > 0 {
				fmt.Fprintf(w, ", %s left in the step", p.PhaseLeft)
			}
			if p.Left > 0 {
				fmt.Fprintf(w, ", at least %s left in all", p.Left)
			}
			if len(es.Traffic) > 0 {
				var t []string
				for _, c := range slices.Sorted(maps.Keys(es.Traffic)) {
					t = append(t, fmt.Sprintf("%s %d%%", c, es.Traffic[c]))
				}
				fmt.Fprintf(w, "; traffic %s", strings.Join(t, ", "))
			}
			fmt.Fprintln(w)
			for _, a := range es.Alarms {
				fmt.Fprintf(w, "  alarm %s\n", alarmValue(a))
			}
		}
		for _, e := range es.ECS {
			if e.Error != "" {
				fmt.Fprintf(w, "  ecs %-10s %s\n", e.Service, e.Error)
				continue
			}
			fmt.Fprintf(w, "  ecs %-10s %s %s: %d/%d running, %d pending, %s\n", e.Service, e.ECSService, e.Status, e.Running, e.Desired, e.Pending, e.TaskDefinition)
			for _, d := range e.Deployments {
				fmt.Fprintf(w, "      deployment %s\n", d)
			}
		}
		for _, t := range es.Tasks {
			fmt.Fprintf(w, "  %-10s %-40s %-6s %-8s 127.0.0.1:%-5d %s\n", t.Service, t.Name, t.Color, t.State, t.HostPort, t.Health)
		}
	}
	for _, u := range unread {
		fmt.Fprintf(w, "not read: %s\n", u)
	}
}

package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newStatusCmd(g *globals) *cobra.Command {
	var watch watchFlag
	cmd := &cobra.Command{
		Use:   "status [ENV]",
		Short: "Show environments: revision, tasks and their health at the load balancer",
		Args:  rangeArgs(0, 1, "at most one argument, ENV"),
		RunE: g.withManager(func(ctx context.Context, m *release.Manager, args []string) error {
			return m.WatchStatus(ctx, strings.Join(args, ""), release.Watch{Every: watch.every, Bare: watch.bare}, func(out []release.Status) error {
				if watch.every > 0 && !g.json() {
					fmt.Fprint(g.stdout, "\033[H\033[2J")
				}
				return g.print(out, func(w io.Writer) { printStatus(w, out) })
			})
		}),
	}
	watch.flags = cmd.Flags()
	cmd.Flags().Var(&watch, "watch", "refresh every interval until interrupted (--watch alone: every 2s; --watch=500ms)")
	cmd.Flags().Lookup("watch").NoOptDefVal = bareWatch
	return cmd
}

// bareWatch is what --watch is set to when given without "=": 2s, written
// so that it differs from --watch=2s (a trailing space, which the help's
// "[=2s ]" hardly shows).
const bareWatch = "2s "

// watchFlag is --watch's interval, and whether it was given bare with no
// argument before it: a value after a space is then the argument, which
// release.WatchStatus explains. After an argument (`status 3 --watch`) the
// number was not meant as the interval.
type watchFlag struct {
	every time.Duration
	bare  bool
	flags *pflag.FlagSet // the command's flags, parsed in order: how many arguments came before
}

func (w *watchFlag) String() string {
	if w == nil || w.every == 0 {
		return "" // no "(default 0s)" in the help
	}
	return w.every.String()
}

func (w *watchFlag) Set(s string) error {
	if s == bareWatch {
		w.every, w.bare = 2*time.Second, w.flags == nil || w.flags.NArg() == 0
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not an interval: write one such as --watch=2s or --watch=500ms", s)
	}
	w.every, w.bare = d, false
	return nil
}

func (w *watchFlag) Type() string { return "duration" }

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
		if len(es.MissingSecrets) > 0 {
			fmt.Fprintf(w, "  secrets without a value: %s: the next deployment fails until each is set (cutover secrets set %s NAME)\n",
				strings.Join(es.MissingSecrets, ", "), es.Environment)
		}
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
				fmt.Fprintf(w, "; traffic %s", trafficText(es.Traffic))
			}
			fmt.Fprintln(w)
			for _, a := range es.Alarms {
				fmt.Fprintf(w, "  alarm %s\n", a.Value())
			}
		}
		for _, e := range es.ECS {
			if e.Error != "" {
				fmt.Fprintf(w, "  ecs %-10s %s\n", e.Service, e.Error)
				continue
			}
			if e.Site != nil {
				fmt.Fprintf(w, "  ecs %-10s static: s3://%s through distribution %s, serving release %s\n", e.Service, e.Site.Bucket, e.Site.Distribution, cmp.Or(e.Site.Release, "(none of cutover's)"))
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

func newHistoryCmd(g *globals) *cobra.Command {
	var limit int
	cmd := g.onArg("history", "ENV", "List the environment's deployments (date, duration, actor, outcome, reason) and revisions (source commit)", func(ctx context.Context, m *release.Manager, env string) error {
		res, err := m.History(ctx, env, limit)
		return g.show(res, err, func(w io.Writer) {
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
	cmd.Long = "Lists deployments and revisions from the state store. It needs neither the Docker engine nor\n" +
		"the proxy, so it works while they are down."
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
func shortID(id string) string { return id[:min(len(id), 12)] }

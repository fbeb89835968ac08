package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/spf13/cobra"
)

func newProxyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "The built-in load balancer: a long-lived process that keeps serving whatever its controllers do",
	}
	keep := &cobra.Command{
		Use:    "keep",
		Short:  "Run the load balancer (`proxy run`) as a child and start it again if it dies: what `proxy start` and `up` start detached",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			return release.KeepProxy(cmd.Context(), home)
		},
	}
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the load balancer in the foreground (`proxy start` and `up` start it detached, restarted if it dies)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			return release.RunProxy(cmd.Context(), home, Version)
		},
	}
	start := &cobra.Command{
		Use:   "start",
		Short: "Start the load balancer detached, unless it already runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			h, err := release.EnsureProxy(cmd.Context(), home)
			if err != nil {
				return err
			}
			return g.print(h, func(w io.Writer) { fmt.Fprintf(w, "proxy running (pid %d)\n", h.PID) })
		},
	}
	var grace time.Duration
	stop := &cobra.Command{
		Use:   "stop",
		Short: "Stop the load balancer (its routes stay persisted for the next start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			if err := release.StopProxy(cmd.Context(), home, grace); err != nil {
				return err
			}
			return g.print(map[string]bool{"stopped": true}, func(w io.Writer) { fmt.Fprintln(w, "proxy stopped") })
		},
	}
	stop.Flags().DurationVar(&grace, "grace", 10*time.Second, "how long in-flight requests may take before the proxy is killed")
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the load balancer's process and the health of every target",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			res, err := release.GetProxyStatus(cmd.Context(), home)
			if err != nil {
				return err
			}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "proxy running (pid %d)\n", res.Proxy.PID)
				for _, t := range res.Targets {
					fmt.Fprintf(w, "  %-32s %-14s %-21s %s\n", t.Group, shortID(t.ID), t.Addr, t.State)
				}
			})
		},
	}
	cmd.AddCommand(run, keep, start, stop, status)
	return cmd
}

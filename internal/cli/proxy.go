package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cutoverdev/cutover/internal/proxy"
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
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			return proxy.Keep(cmd.Context(), home, exe, []string{"proxy", "run", "--home", home}, proxy.KeepOptions{})
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
			return proxy.Run(cmd.Context(), home, proxy.RunOptions{Version: Version, Procs: proxy.DefaultProcs()})
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
			c, err := startProxy(cmd.Context(), home)
			if err != nil {
				return err
			}
			h, err := c.Ping(cmd.Context())
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
			if err := proxy.Stop(cmd.Context(), home, grace); err != nil {
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
			c := proxy.NewClient(home)
			h, err := c.Ping(cmd.Context())
			if err != nil {
				return err
			}
			targets, err := c.Targets(cmd.Context())
			if err != nil {
				return err
			}
			res := struct {
				Proxy   proxy.Health         `json:"proxy"`
				Targets []proxy.TargetStatus `json:"targets"`
			}{h, targets}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "proxy running (pid %d)\n", h.PID)
				for _, t := range targets {
					fmt.Fprintf(w, "  %-32s %-14s %-21s %s\n", t.Group, shortTaskID(t.ID), t.Addr, t.State)
				}
			})
		},
	}
	cmd.AddCommand(run, keep, start, stop, status)
	return cmd
}

func shortTaskID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

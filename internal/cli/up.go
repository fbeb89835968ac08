package cli

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"
)

type upCmd struct{ timeout time.Duration }

func newUpCmd(g *globals) *cobra.Command {
	c := &upCmd{}
	cmd := &cobra.Command{
		Use:   "up ENV",
		Short: "Build the services, start them behind the load balancer and wait until healthy",
		Long: "Builds every service's image from the working tree, starts the proxy if it is not running,\n" +
			"starts the tasks beside any running ones, waits until the load balancer reports them healthy,\n" +
			"moves all traffic to them, removes the old tasks, and prints the URLs.",
		Args: exactArgs(1, "ENV"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd.Context(), g, args[0], true)
			if err != nil {
				return err
			}
			defer s.close()
			res, err := s.env(g, args[0], c.timeout).Up(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s/%s is up: revision %s (%s)\n", res.Project, res.Environment, res.Revision, res.Color)
				fmt.Fprintf(w, "  production: %s\n  test:       %s\n", res.URL, res.TestURL)
				names := make([]string, 0, len(res.Tasks))
				for n := range res.Tasks {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					fmt.Fprintf(w, "  %s: %d tasks\n", n, len(res.Tasks[n]))
				}
			})
		},
	}
	cmd.Flags().DurationVar(&c.timeout, "timeout", 2*time.Minute, "how long new tasks may take to become healthy")
	return cmd
}

func newDownCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "down ENV",
		Short: "Remove the environment's containers and routes",
		Args:  exactArgs(1, "ENV"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd.Context(), g, args[0], false)
			if err != nil {
				return err
			}
			defer s.close()
			env := s.env(g, args[0], 0)
			if _, err := s.proxy.Ping(cmd.Context()); err != nil {
				env.Proxy = nil // no proxy running: nothing routes to this environment
			}
			res, err := env.Down(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s/%s is down: removed %d tasks and its routes\n", res.Project, res.Environment, res.RemovedTasks)
			})
		},
	}
}

// exactArgs is cobra.ExactArgs with a message that names the missing argument.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Sprintf("%s needs %s (got %d arguments; see `%s --help`)", cmd.CommandPath(), names, len(args), cmd.CommandPath())}
		}
		return nil
	}
}

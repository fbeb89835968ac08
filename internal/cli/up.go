package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/store"

	"github.com/spf13/cobra"
)

type upCmd struct {
	timeout time.Duration
	wait    bool
}

func newUpCmd(g *globals) *cobra.Command {
	c := &upCmd{}
	cmd := &cobra.Command{
		Use:   "up ENV",
		Short: "Build the services, start them behind the load balancer and wait until healthy",
		Long: "Builds every service's image from the working tree, starts the proxy if it is not running,\n" +
			"starts the tasks beside any running ones, waits until the load balancer reports them healthy,\n" +
			"moves all traffic to them at once, removes the old tasks, and prints the URLs.\n" +
			"It is a blue/green deployment without hooks, shifting steps or waits: `cutover deploy` runs the\n" +
			"environment's own strategy.",
		Args: exactArgs(1, "ENV"),
		RunE: func(cmd *cobra.Command, args []string) error {
			env := args[0]
			return withController(cmd.Context(), g, env, "cutover up", c.wait, c.timeout, func(ctx context.Context, s *session, ctrl *deploy.Controller) error {
				ctrl.Config = upConfig(s.cfg, env)
				if err := local.CheckPorts(ctx, s.proxy, s.cfg, ctrl.Env); err != nil {
					return err
				}
				images, err := local.BuildImages(ctx, s.rt, s.cfg, local.NewBuildID(time.Now()), nil, g.stderr)
				if err != nil {
					return err
				}
				rev := local.NewRevision(s.cfg, env, images, workingTreeSource(ctx, s.cfg.Dir()))
				if err := s.store.CreateRevision(ctx, rev); err != nil {
					return err
				}
				d, err := ctrl.Deploy(ctx, rev)
				if err != nil {
					return err
				}
				if d.Status != store.DeploymentSucceeded {
					return deploymentFailed{d}
				}
				retain(ctx, g, s)
				e := s.cfg.Environments[env]
				res := struct {
					Project     string `json:"project"`
					Environment string `json:"environment"`
					Revision    string `json:"revision"`
					Deployment  string `json:"deployment"`
					URL         string `json:"url"`
					TestURL     string `json:"test_url"`
				}{s.cfg.Project, env, d.Revision, d.ID,
					e.Listen.ProductionURL() + "/", e.Listen.TestURL() + "/"}
				return g.printResult(res, func(w io.Writer) {
					fmt.Fprintf(w, "%s/%s is up: revision %s\n  production: %s\n  test:       %s\n", res.Project, res.Environment, res.Revision, res.URL, res.TestURL)
				})
			})
		},
	}
	cmd.Flags().DurationVar(&c.timeout, "timeout", 2*time.Minute, "how long new tasks may take to become healthy")
	cmd.Flags().BoolVar(&c.wait, "wait", false, "wait for a deployment already running in the environment instead of failing")
	return cmd
}

// upConfig is cfg with env's strategy replaced by the fastest safe one:
// blue/green, all at once as soon as the new set is healthy, no hooks.
func upConfig(cfg *config.Config, env string) *config.Config {
	c := *cfg
	c.Environments = maps.Clone(cfg.Environments)
	e := *c.Environments[env]
	e.Strategy = config.Strategy{
		Type: config.StrategyBlueGreen, Traffic: config.TrafficAllAtOnce,
		MinimumHealthyPercent: 100, MaximumPercent: 200,
		AutoRollback: config.AutoRollback{OnFailure: true, OnAlarm: true, OnStop: true},
	}
	e.Hooks = config.Hooks{}
	c.Environments[env] = &e
	return &c
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
			lctx, release, err := deploy.Lock(cmd.Context(), s.store, s.cfg.Project, args[0], "cutover down", false)
			if err != nil {
				return err
			}
			defer release()
			env := &local.Env{Config: s.cfg, Name: args[0], Runtime: s.rt, Proxy: s.proxy, Store: s.store}
			if _, err := s.proxy.Ping(cmd.Context()); err != nil {
				env.Proxy = nil // no proxy running: nothing routes to this environment
			}
			res, err := env.Down(lctx)
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

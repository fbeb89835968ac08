package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
)

type deployCmd struct {
	images  []string
	wait    bool
	diff    bool
	timeout time.Duration
}

func newDeployCmd(g *globals) *cobra.Command {
	c := &deployCmd{}
	cmd := &cobra.Command{
		Use:   "deploy ENV",
		Short: "Deploy a new revision with the environment's strategy (blue/green or rolling)",
		Long: "Builds the services from the working tree (or takes --image service=ref), records an immutable\n" +
			"revision, and deploys it with the environment's strategy: blue/green with test traffic, hooks,\n" +
			"traffic shifting, alarms and automatic rollback, or rolling with a circuit breaker.\n" +
			"On platform ecs, services without --image service=REGISTRY/REPO@sha256:DIGEST are built and pushed\n" +
			"to ECR: rolling runs as an ECS deployment with circuit breaker and alarms, blue_green as one\n" +
			"CodeDeploy deployment per service (or ECS-native blue/green); --diff first shows what changes\n" +
			"in each service's task definition.",
		Args: exactArgs(1, "ENV"),
		RunE: func(cmd *cobra.Command, args []string) error {
			images, err := parseImageFlags(c.images)
			if err != nil {
				return err
			}
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				d, err := m.Deploy(cmd.Context(), args[0], release.DeployOptions{Images: images, Wait: c.wait, Timeout: c.timeout, Diff: c.diff})
				return reportDeployment(g, d, err)
			})
		},
	}
	cmd.Flags().StringArrayVar(&c.images, "image", nil, "deploy this image for a service instead of building it: service=ref (repeatable)")
	cmd.Flags().BoolVar(&c.wait, "wait", false, "wait for a deployment already running in the environment instead of failing")
	cmd.Flags().DurationVar(&c.timeout, "timeout", 5*time.Minute, "how long new tasks may take to become healthy")
	cmd.Flags().BoolVar(&c.diff, "diff", false, "platform ecs: show each service's task definition change before deploying it")
	return cmd
}

func parseImageFlags(flags []string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range flags {
		name, ref, ok := strings.Cut(f, "=")
		if !ok || name == "" || ref == "" {
			return nil, usageError{fmt.Sprintf("--image %q: write service=image (for example backend=registry/app@sha256:...)", f)}
		}
		out[name] = ref
	}
	return out, nil
}

// reportDeployment prints a deployment that ran; the exit code is 1 when
// it did not succeed (a release.DeploymentFailed error).
func reportDeployment(g *globals, d store.Deployment, err error) error {
	var failed release.DeploymentFailed
	if err != nil && !errors.As(err, &failed) {
		return err
	}
	if perr := g.printResult(d, func(w io.Writer) {
		fmt.Fprintf(w, "deployment %s: %s (revision %s, %d%% of traffic on it)\n", d.ID, d.Status, d.Revision, d.TrafficPercent)
		if d.Reason != "" {
			fmt.Fprintf(w, "  reason: %s\n", d.Reason)
		}
	}); perr != nil {
		return perr
	}
	return err
}

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
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				res, err := m.Up(cmd.Context(), args[0], release.UpOptions{Wait: c.wait, Timeout: c.timeout})
				if err != nil {
					return err
				}
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

func newDownCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "down ENV",
		Short: "Remove the environment's containers and routes",
		Args:  exactArgs(1, "ENV"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				res, err := m.Down(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return g.print(res, func(w io.Writer) {
					fmt.Fprintf(w, "%s/%s is down: removed %d tasks and its routes\n", res.Project, res.Environment, res.RemovedTasks)
				})
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

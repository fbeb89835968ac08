package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/short"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
)

func newDeployCmd(g *globals) *cobra.Command {
	var o release.DeployOptions
	var images []string
	cmd := g.onArg("deploy", "ENV", "Deploy a new revision with the environment's strategy (blue/green or rolling)", func(ctx context.Context, m *release.Manager, env string) (err error) {
		if o.Images, err = release.ParseImages(images); err != nil {
			return err
		}
		d, err := m.Deploy(ctx, env, o)
		if err != nil {
			m.StopIdleProxy(context.WithoutCancel(ctx)) // one this command started, routing nothing
		}
		return reportDeployment(g, d, err)
	})
	cmd.Long = "Builds the services from the working tree (or takes --image service=ref), records an immutable\n" +
		"revision, and deploys it with the environment's strategy: blue/green with test traffic, hooks,\n" +
		"traffic shifting, alarms and automatic rollback, or rolling with a circuit breaker.\n" +
		"On platform ecs, services without --image service=REGISTRY/REPO@sha256:DIGEST are built and pushed\n" +
		"to ECR: rolling runs as an ECS deployment with circuit breaker and alarms, blue_green as one\n" +
		"CodeDeploy deployment per service (or ECS-native blue/green); --diff first shows what changes\n" +
		"in each service's task definition."
	cmd.Flags().StringArrayVar(&images, "image", nil, "deploy this image for a service instead of building it: service=ref (repeatable)")
	cmd.Flags().BoolVar(&o.Wait, "wait", false, "wait for a deployment already running in the environment instead of failing")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long new tasks may take to become healthy")
	cmd.Flags().BoolVar(&o.Diff, "diff", false, "platform ecs: show each service's task definition change before deploying it")
	return cmd
}

// reportDeployment prints a deployment that ran; the exit code is 1 when
// it did not succeed (a release.DeploymentFailed error).
func reportDeployment(g *globals, d store.Deployment, err error) error {
	return report(g.printResult, d, err, func(w io.Writer) {
		fmt.Fprintf(w, "deployment %s: %s (revision %s, %d%% of traffic on it)\n", d.ID, d.Status, d.Revision, d.TrafficPercent)
		if d.Reason != "" {
			fmt.Fprintf(w, "  reason: %s\n", d.Reason)
		}
	})
}

// report prints v when it ran (err is nil, or says it ran and failed) and returns err.
func report(print func(any, func(io.Writer)) error, v any, err error, text func(io.Writer)) error {
	var deployment release.DeploymentFailed
	var execution release.ExecutionFailed
	if err != nil && !errors.As(err, &deployment) && !errors.As(err, &execution) {
		return err
	}
	if perr := print(v, text); perr != nil {
		return perr
	}
	return err
}

func newUpCmd(g *globals) *cobra.Command {
	var o release.UpOptions
	cmd := g.onArg("up", "ENV", "Build the services, start them behind the load balancer and wait until healthy", func(ctx context.Context, m *release.Manager, env string) error {
		res, err := m.Up(ctx, env, o)
		if err != nil {
			m.StopIdleProxy(context.WithoutCancel(ctx)) // one this command started, routing nothing
		}
		return g.showResult(res, err, func(w io.Writer) {
			fmt.Fprintf(w, "%s/%s is up: revision %s\n  url:      %s\n  test url: %s (the test listener)\n", res.Project, res.Environment, res.Revision, res.URL, res.TestURL)
		})
	})
	cmd.Long = "Builds every service's image from the working tree, starts the proxy if it is not running,\n" +
		"starts the tasks beside any running ones, waits until the load balancer reports them healthy,\n" +
		"moves all traffic to them at once, removes the old tasks, and prints the URLs.\n" +
		"It is a blue/green deployment without hooks, shifting steps or waits: `cutover deploy` runs the\n" +
		"environment's own strategy."
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 2*time.Minute, "how long new tasks may take to become healthy")
	cmd.Flags().BoolVar(&o.Wait, "wait", false, "wait for a deployment already running in the environment instead of failing")
	return cmd
}

func newDownCmd(g *globals) *cobra.Command {
	return g.onArg("down", "ENV", "Remove the environment's containers and routes", func(ctx context.Context, m *release.Manager, env string) error {
		res, err := m.Down(ctx, env)
		return g.show(res, err, func(w io.Writer) {
			fmt.Fprintf(w, "%s/%s is down: removed %d tasks and its routes\n", res.Project, res.Environment, res.RemovedTasks)
		})
	})
}

// exactArgs is cobra.ExactArgs with a message that names the missing argument.
func exactArgs(n int, names string) cobra.PositionalArgs { return rangeArgs(n, n, names) }

// rangeArgs is cobra.RangeArgs with a message that names the arguments.
func rangeArgs(min, max int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return release.UsageError{Msg: fmt.Sprintf("%s needs %s (got %s; see `%s --help`)", cmd.CommandPath(), names, short.Count(len(args), "argument"), cmd.CommandPath())}
		}
		return nil
	}
}

func newPruneCmd(g *globals) *cobra.Command {
	var o release.PruneOptions
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove the images and static-site releases of revisions older than the newest N of each environment",
		Long: "Removes the images this store (CUTOVER_HOME) built for this project that nothing needs: it keeps\n" +
			"the images of the newest revisions of each environment (retention.revisions in cutover.yaml, 5 by\n" +
			"default, or --keep), of the revision each environment serves, of deployments in progress and of\n" +
			"pipeline executions that may still run, those any container uses, and those younger than\n" +
			"--min-age (a build may be running). Images of the project that another store built (another\n" +
			"CUTOVER_HOME on this engine) or that carry no store label (built by an older cutover) are never\n" +
			"removed: they are reported as skipped. On ECS environments with static services it removes the\n" +
			"site releases (releases/<digest>/ in the bucket) on the same terms, keeping as well the release\n" +
			"each distribution serves and the N newest uploaded (the exported pipeline's are on no record here).\n" +
			"The same pruning runs after each successful `up` and `deploy`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("keep") && o.Keep < 2 {
				return release.UsageError{Msg: fmt.Sprintf("--keep %d: keep at least 2 revisions, so a rollback to the previous one needs no rebuild", o.Keep)}
			}
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				res, err := m.Prune(cmd.Context(), o)
				return g.show(res, err, func(w io.Writer) {
					verb := "removed"
					if o.DryRun {
						verb = "would remove"
					}
					keep := cmp.Or(o.Keep, m.Config.Retention.Revisions)
					for _, site := range res.Sites {
						fmt.Fprintf(w, "%s %d releases from s3://%s (%s), kept %d (served, the newest %d, on record, or younger than %s)\n",
							verb, len(site.Removed), site.Bucket, release.Megabytes(site.FreedBytes), site.Kept, keep, o.MinAge)
						for _, r := range site.Removed {
							what := "release"
							if !r.Complete {
								what = "incomplete upload"
							}
							fmt.Fprintf(w, "  %s %s of %s, %d files\n", what, r.Digest[:12], r.Modified.Local().Format("2006-01-02 15:04"), r.Objects)
						}
					}
					if !m.HasLocal() {
						return
					}
					fmt.Fprintf(w, "%s %d images (%s), kept %d (the newest %d revisions of each environment, images in use or younger than %s)\n",
						verb, len(res.Removed), release.Megabytes(res.FreedBytes), res.Kept, keep, o.MinAge)
					for _, im := range res.Removed {
						fmt.Fprintf(w, "  %s %s\n", shortImage(im.ID), strings.Join(im.Tags, " "))
					}
					if len(res.Skipped) > 0 && !o.DryRun {
						fmt.Fprintf(w, "skipped %d images of the project this store did not build (--dry-run lists them and why)\n", len(res.Skipped))
					} else if len(res.Skipped) > 0 {
						fmt.Fprintf(w, "skipped %d images of the project this store did not build:\n", len(res.Skipped))
						for _, im := range res.Skipped {
							fmt.Fprintf(w, "  %s %s: %s\n", shortImage(im.ID), strings.Join(im.Tags, " "), im.Reason)
						}
					}
				})
			})
		},
	}
	cmd.Flags().IntVar(&o.Keep, "keep", 0, "keep the images and site releases of the newest N revisions of each environment (default: retention.revisions)")
	cmd.Flags().DurationVar(&o.MinAge, "min-age", release.AutoPruneMinAge, "keep images and site releases younger than this (a build or an upload may be running)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "list what would be removed, remove nothing")
	return cmd
}

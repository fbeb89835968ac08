package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/hook"
	"github.com/cutoverdev/cutover/internal/platform/local"
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
			overrides, err := parseImageFlags(c.images)
			if err != nil {
				return err
			}
			if onECS(g, args[0]) {
				return deployECS(cmd.Context(), g, args[0], overrides, c.wait, c.timeout, c.diff)
			}
			if c.diff {
				return usageError{fmt.Sprintf("--diff shows task definition changes on platform ecs; environment %s is on platform local", args[0])}
			}
			return withController(cmd.Context(), g, args[0], "cutover deploy", c.wait, c.timeout, func(ctx context.Context, s *session, ctrl *deploy.Controller) error {
				for name := range overrides {
					if _, ok := s.cfg.Services[name]; !ok {
						return usageError{fmt.Sprintf("--image %s=...: no service named %q in %s (services: %s)", name, name, g.file, strings.Join(s.cfg.ServiceNames(), ", "))}
					}
				}
				if err := local.CheckPorts(ctx, s.proxy, s.cfg, ctrl.Env); err != nil {
					return err
				}
				images, err := local.BuildImages(ctx, s.rt, s.cfg, local.NewBuildID(time.Now()), overrides, g.stderr)
				if err != nil {
					return err
				}
				source := workingTreeSource(ctx, s.cfg.Dir())
				if len(overrides) == len(s.cfg.Services) {
					source = "images"
				}
				rev := local.NewRevision(s.cfg, args[0], images, source)
				if err := s.store.CreateRevision(ctx, rev); err != nil {
					return err
				}
				d, err := ctrl.Deploy(ctx, rev)
				if err == nil && d.Status == store.DeploymentSucceeded {
					retain(ctx, g, s)
				}
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

// withController opens the environment, takes its lease, reconciles a
// deployment left behind by a killed controller, and runs fn.
func withController(ctx context.Context, g *globals, env, command string, wait bool, timeout time.Duration, fn func(context.Context, *session, *deploy.Controller) error) error {
	s, err := openSession(ctx, g, env, true)
	if err != nil {
		return err
	}
	defer s.close()
	if p := s.cfg.Environments[env].Platform; p != config.PlatformLocal {
		return fmt.Errorf("%s: environments.%s.platform %q: deployments on %s are not available yet (use platform: local)", g.file, env, p, p)
	}
	lctx, release, err := deploy.Lock(ctx, s.store, s.cfg.Project, env, command, wait)
	if err != nil {
		return err
	}
	defer release()
	ctrl := s.controller(g, env, timeout)
	if d, err := ctrl.Reconcile(lctx, false); err != nil {
		return fmt.Errorf("reconciling the deployment left by a stopped cutover: %w", err)
	} else if d != nil {
		fmt.Fprintf(g.stderr, "reconciled deployment %s: %s (%s)\n", d.ID, d.Status, d.Reason)
	}
	return fn(lctx, s, ctrl)
}

// reconcileOrphan finishes or rolls back a deployment whose controller
// died, if there is one and nobody holds the lease: any command that looks
// at an environment leaves it consistent.
func reconcileOrphan(ctx context.Context, g *globals, s *session, env string) error {
	if _, err := s.store.ActiveDeployment(ctx, s.cfg.Project, env); err != nil || isECS(s.cfg, env) {
		return nil // ECS deployments are driven by AWS, not reconciled here
	}
	if _, err := s.proxy.Ping(ctx); err != nil {
		return nil // nothing routes: reconcile when a command that starts the proxy runs
	}
	lctx, release, err := deploy.Lock(ctx, s.store, s.cfg.Project, env, "cutover status", false)
	if err != nil {
		return nil // a live controller drives it
	}
	defer release()
	d, err := s.controller(g, env, 5*time.Minute).Reconcile(lctx, false)
	if err == nil && d != nil {
		fmt.Fprintf(g.stderr, "reconciled deployment %s: %s (%s)\n", d.ID, d.Status, d.Reason)
	}
	return err
}

func (s *session) controller(g *globals, env string, timeout time.Duration) *deploy.Controller {
	e := s.cfg.Environments[env]
	log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p := newProgress(g)
	return &deploy.Controller{
		Config:   s.cfg,
		Env:      env,
		Platform: &local.Platform{Config: s.cfg, Env: env, Runtime: s.rt, Proxy: s.proxy, Log: log},
		Store:    s.store,
		Hooks: hook.Env{
			TestURL:       e.Listen.TestURL(),
			ProductionURL: e.Listen.ProductionURL(),
			ProductionTLS: hook.ListenerTLS(s.cfg, e.Listen),
			Dir:           s.cfg.Dir(),
			Vars:          map[string]string{"CUTOVER_PROJECT": s.cfg.Project, "CUTOVER_ENVIRONMENT": env},
		},
		Timeout:  timeout,
		Progress: p.event,
		Log:      log,
		Owner:    whoAmI(),
	}
}

// deploymentFailed is returned so the exit code is 1 when a deployment did not succeed.
type deploymentFailed struct{ d store.Deployment }

func (e deploymentFailed) Error() string {
	return fmt.Sprintf("deployment %s %s: %s", e.d.ID, strings.ReplaceAll(e.d.Status, "_", " "), e.d.Reason)
}

func reportDeployment(g *globals, d store.Deployment, err error) error {
	if err != nil {
		return err
	}
	if err := g.printResult(d, func(w io.Writer) {
		fmt.Fprintf(w, "deployment %s: %s (revision %s, %d%% of traffic on it)\n", d.ID, d.Status, d.Revision, d.TrafficPercent)
		if d.Reason != "" {
			fmt.Fprintf(w, "  reason: %s\n", d.Reason)
		}
	}); err != nil {
		return err
	}
	if d.Status != store.DeploymentSucceeded {
		return deploymentFailed{d}
	}
	return nil
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
)

// whoAmI attributes a request or a deployment to the OS user running this
// command, with the process that acts for it.
func whoAmI() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s (pid %d on %s)", auth.LocalUser().Name, os.Getpid(), host)
}

// newRequestCmd builds `stop` and `continue`: a request to the running
// deployment's controller, which polls the event log.
func newRequestCmd(g *globals, use, short, kind string, waitEnd bool) *cobra.Command {
	return &cobra.Command{
		Use:   use + " ENV",
		Short: short,
		Args:  exactArgs(1, "ENV"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if onECS(g, args[0]) {
				switch kind {
				case deploy.RequestStop:
					return stopECS(ctx, g, args[0], "cutover stop")
				case deploy.RequestContinue:
					return continueECS(ctx, g, args[0])
				}
				return fmt.Errorf("cutover %s is not available on ECS environments yet (%s is on platform ecs)", use, args[0])
			}
			s, err := openSession(ctx, g, args[0], false)
			if err != nil {
				return err
			}
			defer s.close()
			d, err := deploy.Request(ctx, s.store, s.cfg.Project, args[0], kind, whoAmI())
			if err != nil {
				return err
			}
			if !waitEnd {
				return g.print(d, func(w io.Writer) { fmt.Fprintf(w, "asked deployment %s to %s\n", d.ID, use) })
			}
			s.close()
			return finishRequested(ctx, g, args[0], d, kind == deploy.RequestRollback)
		},
	}
}

// finishRequested waits for the controller to act on a request; when no
// live controller holds the lease, this command takes over and acts itself.
func finishRequested(ctx context.Context, g *globals, env string, d store.Deployment, rollback bool) error {
	s, err := openSession(ctx, g, env, true)
	if err != nil {
		return err
	}
	defer s.close()
	for {
		lctx, release, err := deploy.Lock(ctx, s.store, s.cfg.Project, env, "cutover "+map[bool]string{true: "rollback", false: "stop"}[rollback], false)
		if err == nil {
			// Nobody drives it: reconcile it here, as a rollback.
			defer release()
			if _, err := s.controller(g, env, 5*time.Minute).Reconcile(lctx, true); err != nil {
				return err
			}
			break
		}
		if !errors.Is(err, store.ErrLeaseHeld) {
			return err
		}
		got, err := s.store.GetDeployment(ctx, d.ID)
		if err != nil {
			return err
		}
		if got.Status != store.DeploymentInProgress {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	got, err := s.store.GetDeployment(ctx, d.ID)
	if err != nil {
		return err
	}
	return g.print(got, func(w io.Writer) {
		fmt.Fprintf(w, "deployment %s: %s (%s)\n", got.ID, got.Status, got.Reason)
	})
}

type rollbackCmd struct{ timeout time.Duration }

func newRollbackCmd(g *globals) *cobra.Command {
	c := &rollbackCmd{}
	cmd := &cobra.Command{
		Use:   "rollback ENV",
		Short: "Roll back: a traffic flip while the previous set is alive, else a redeploy of the previous revision",
		Long: "During a deployment (including its termination wait) production traffic flips back to the\n" +
			"original set at once and the new set is drained and stopped. After that, the previous\n" +
			"revision is deployed again through the environment's strategy, without rebuilding.",
		Args: exactArgs(1, "ENV"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			env := args[0]
			if onECS(g, env) {
				return rollbackECS(ctx, g, env, c.timeout)
			}
			s, err := openSession(ctx, g, env, false)
			if err != nil {
				return err
			}
			d, err := deploy.Request(ctx, s.store, s.cfg.Project, env, deploy.RequestRollback, whoAmI())
			s.close()
			if err == nil {
				return finishRequested(ctx, g, env, d, true)
			}
			// Nothing in progress: redeploy the revision that ran before the current one.
			return withController(ctx, g, env, "cutover rollback", false, c.timeout, func(ctx context.Context, s *session, ctrl *deploy.Controller) error {
				rev, err := previousRevision(ctx, s.store, s.cfg.Project, env)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stderr, "redeploying the previous revision %s (no rebuild)\n", rev.ID)
				d, err := ctrl.Deploy(ctx, rev)
				return reportDeployment(g, d, err)
			})
		},
	}
	cmd.Flags().DurationVar(&c.timeout, "timeout", 5*time.Minute, "how long tasks may take to become healthy when redeploying")
	return cmd
}

// previousRevision is what a rollback after the termination wait redeploys:
// the revision that ran before the last completed deployment.
func previousRevision(ctx context.Context, st *store.Store, project, env string) (store.Revision, error) {
	last, err := st.LastSucceededDeployment(ctx, project, env)
	if errors.Is(err, store.ErrNotFound) {
		return store.Revision{}, fmt.Errorf("%s/%s has no completed deployment to roll back from", project, env)
	} else if err != nil {
		return store.Revision{}, err
	}
	if last.PreviousRevision == "" {
		return store.Revision{}, fmt.Errorf("deployment %s (revision %s) was the first in %s/%s: there is no previous revision to roll back to", last.ID, last.Revision, project, env)
	}
	return st.GetRevision(ctx, last.PreviousRevision)
}

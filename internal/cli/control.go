package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/spf13/cobra"
)

func newStopCmd(g *globals) *cobra.Command {
	return g.onArg("stop", "ENV", "Stop the running deployment and roll it back", func(ctx context.Context, m *release.Manager, env string) error {
		d, err := m.Stop(ctx, env)
		return printEnded(g, d, err)
	})
}

// newAskCmd builds `continue` and `promote`: a request to the running
// deployment's controller, which acts on it within a tick.
func newAskCmd(g *globals, use, short, long string, ask func(*release.Manager, context.Context, string) (store.Deployment, error)) *cobra.Command {
	cmd := g.onArg(use, "ENV", short, func(ctx context.Context, m *release.Manager, env string) error {
		d, err := ask(m, ctx, env)
		return g.show(d, err, func(w io.Writer) { fmt.Fprintf(w, "asked deployment %s to %s\n", d.ID, use) })
	})
	cmd.Long = long
	return cmd
}

func newContinueCmd(g *globals) *cobra.Command {
	return newAskCmd(g, "continue", "Let a deployment waiting for approval shift production traffic", "", (*release.Manager).Continue)
}

func newPromoteCmd(g *globals) *cobra.Command {
	return newAskCmd(g, "promote", "Skip the running deployment's remaining steps and waits: all traffic to the new set now",
		"The running deployment moves all production traffic to the new set at once and finishes:\n"+
			"the ready wait, the remaining traffic steps, the bake and the termination wait are skipped\n"+
			"(alarms are no longer watched and the instant rollback of the termination wait is given up).\n"+
			"The new set must still be healthy.", (*release.Manager).Promote)
}

// printEnded prints a deployment that a stop or rollback ended.
func printEnded(g *globals, d store.Deployment, err error) error {
	return g.show(d, err, func(w io.Writer) {
		fmt.Fprintf(w, "deployment %s: %s (%s)\n", d.ID, d.Status, d.Reason)
	})
}

func newRollbackCmd(g *globals) *cobra.Command {
	var o release.RollbackOptions
	cmd := g.onArg("rollback", "ENV", "Roll back: a traffic flip while the previous set is alive, else a redeploy of the previous revision", func(ctx context.Context, m *release.Manager, env string) error {
		d, err := m.Rollback(ctx, env, o)
		if err == nil && d.Status != store.DeploymentSucceeded {
			return printEnded(g, d, nil) // a deployment in progress, flipped back
		}
		return reportDeployment(g, d, err)
	})
	cmd.Long = "During a deployment (including its termination wait) production traffic flips back to the\n" +
		"original set at once and the new set is drained and stopped. After that, the previous\n" +
		"revision is deployed again through the environment's strategy, without rebuilding.\n" +
		"--to REVISION deploys that revision of the environment again instead (see `cutover history`)."
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long tasks may take to become healthy when redeploying")
	cmd.Flags().StringVar(&o.To, "to", "", "deploy this revision of the environment again (an id from cutover history ENV)")
	return cmd
}

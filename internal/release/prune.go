package release

import (
	"context"
	"fmt"
	"time"

	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
)

// AutoPruneMinAge keeps the images of builds that may still be running.
const AutoPruneMinAge = time.Hour

// PruneOptions: Keep the newest N revisions of each environment (0:
// retention.revisions), images younger than MinAge; DryRun removes nothing.
type PruneOptions struct {
	Keep   int
	MinAge time.Duration
	DryRun bool
}

// PruneResult is what Prune removed (or would remove) and kept.
type PruneResult = local.PruneResult

// Prune removes the images cutover built for the project that no
// environment needs.
func (m *Manager) Prune(ctx context.Context, o PruneOptions) (PruneResult, error) {
	if !m.needsDocker("") {
		return PruneResult{}, UsageError{"prune: no environment of " + m.configFile() + " runs on this machine's Docker engine"}
	}
	if o.Keep == 0 {
		o.Keep = m.Config.Retention.Revisions
	}
	if o.Keep < 2 {
		return PruneResult{}, UsageError{fmt.Sprintf("--keep %d: keep at least 2 revisions, so a rollback to the previous one needs no rebuild", o.Keep)}
	}
	rt, err := m.runtime(ctx)
	if err != nil {
		return PruneResult{}, err
	}
	return local.Prune(ctx, rt, m.Store, local.PruneOptions{Project: m.Config.Project, Environments: m.Config.EnvironmentNames(),
		Keep: o.Keep, MinAge: o.MinAge, DryRun: o.DryRun})
}

// retain runs the automatic retention after a successful deployment: the
// images of revisions older than retention.revisions go. A failure to prune
// does not fail the deployment; it is reported as a note.
func (m *Manager) retain(ctx context.Context, rt *docker.Runtime) {
	res, err := local.Prune(context.WithoutCancel(ctx), rt, m.Store, local.PruneOptions{Project: m.Config.Project,
		Environments: m.Config.EnvironmentNames(), Keep: m.Config.Retention.Revisions, MinAge: AutoPruneMinAge})
	switch {
	case err != nil:
		m.note("warning: removing the images of old revisions: %v (run `cutover prune` to retry)", err)
	case len(res.Removed) > 0:
		m.note("removed %d images of revisions older than the newest %d (%s)", len(res.Removed), m.Config.Retention.Revisions, Megabytes(res.FreedBytes))
	}
}

// Megabytes says n bytes as "12.3 MB".
func Megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

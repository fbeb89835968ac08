package release

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/platform/ecs"
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

// PruneResult is what Prune removed (or would remove) and kept: images of
// this machine's Docker engine, and releases of static sites on ECS.
type PruneResult struct {
	local.PruneResult
	Sites []ecs.SitePruneResult `json:"sites,omitempty"`
}

// Prune removes the images this store built for the project that no
// environment needs; images of the project another store (or an older
// cutover) built are skipped (local.Prune). It removes as well the releases
// of the ECS environments' static sites that nothing needs (pruneSites).
func (m *Manager) Prune(ctx context.Context, o PruneOptions) (PruneResult, error) {
	docker, sites := m.needsDocker(""), m.siteEnvironments()
	if !docker && len(sites) == 0 {
		return PruneResult{}, UsageError{"prune: no environment of " + m.configFile() + " runs on this machine's Docker engine or publishes a static site on ECS"}
	}
	if o.Keep == 0 {
		o.Keep = m.Config.Retention.Revisions
	}
	if o.Keep < 2 {
		return PruneResult{}, UsageError{fmt.Sprintf("--keep %d: keep at least 2 revisions, so a rollback to the previous one needs no rebuild", o.Keep)}
	}
	var res PruneResult
	if docker {
		rt, err := m.runtime(ctx)
		if err != nil {
			return res, err
		}
		if res.PruneResult, err = local.Prune(ctx, rt, m.Store, m.pruneOptions(o)); err != nil {
			return res, err
		}
	}
	if len(sites) > 0 {
		var err error
		if res.Sites, err = m.pruneSites(ctx, sites, o); err != nil {
			return res, err
		}
	}
	return res, nil
}

// HasLocal says whether an environment runs on this machine's Docker engine.
func (m *Manager) HasLocal() bool { return m.needsDocker("") }

func (m *Manager) pruneOptions(o PruneOptions) local.PruneOptions {
	return local.PruneOptions{Project: m.Config.Project, Environments: m.Config.EnvironmentNames(), Keep: o.Keep, MinAge: o.MinAge, DryRun: o.DryRun}
}

// siteEnvironments are the ECS environments, if the project has a static
// service.
func (m *Manager) siteEnvironments() []string {
	if len(staticNames(m.Config)) == 0 {
		return nil
	}
	var out []string
	for _, env := range m.Config.EnvironmentNames() {
		if isECS(m.Config, env) {
			out = append(out, env)
		}
	}
	return out
}

// pruneSites removes from each static site's bucket the releases nothing
// needs: of every bucket it keeps the release each distribution reading it
// serves (of every environment: two may share a bucket), those the store's
// records name (the newest o.Keep revisions of each environment, the
// revision each serves, deployments in progress, executions that may still
// run), the o.Keep newest by their upload (a release published from
// another machine, by the exported pipeline, is on no record here) and
// those younger than o.MinAge. A bucket whose distributions cannot all be
// read keeps everything (the error says which).
func (m *Manager) pruneSites(ctx context.Context, envs []string, o PruneOptions) ([]ecs.SitePruneResult, error) {
	needed, err := local.NeededRefs(ctx, m.Store, m.pruneOptions(o))
	if err != nil {
		return nil, err
	}
	type bucket struct {
		clients ecs.SiteClients
		sites   []ecs.Site
	}
	buckets := map[string]*bucket{}
	for _, env := range envs {
		s := m.openECS(env)
		sc, err := s.siteClients(ctx)
		if err != nil {
			return nil, err
		}
		for _, name := range staticNames(s.cfg) {
			site, err := s.site(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", env, err)
			}
			b := buckets[site.Bucket]
			if b == nil {
				b = &bucket{clients: sc}
				buckets[site.Bucket] = b
			}
			b.sites = append(b.sites, site)
		}
	}
	var out []ecs.SitePruneResult
	for _, name := range slices.Sorted(maps.Keys(buckets)) {
		b := buckets[name]
		res, err := b.clients.PruneReleases(ctx, name, ecs.SitePruneOptions{Serving: b.sites, Keep: o.Keep, MinAge: o.MinAge, DryRun: o.DryRun,
			Needed: func(d string) bool { return needed(ecs.SiteRef(d)) }})
		out = append(out, res)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// retain runs the automatic retention after a successful deployment: the
// images of revisions older than retention.revisions go. A failure to prune
// does not fail the deployment; it is reported as a note.
func (m *Manager) retain(ctx context.Context, rt *docker.Runtime) {
	res, err := local.Prune(context.WithoutCancel(ctx), rt, m.Store, m.pruneOptions(PruneOptions{Keep: m.Config.Retention.Revisions, MinAge: AutoPruneMinAge}))
	switch {
	case err != nil:
		m.note("warning: removing the images of old revisions: %v (run `cutover prune` to retry)", err)
	case len(res.Removed) > 0:
		m.note("removed %d images of revisions older than the newest %d (%s)", len(res.Removed), m.Config.Retention.Revisions, Megabytes(res.FreedBytes))
	}
}

// retainSites runs the automatic retention of the static sites after a
// deployment switched them: releases older than the newest
// retention.revisions go (pruneSites). A failure (no s3:DeleteObject, say)
// does not fail the deployment; it is reported as a note.
func (m *Manager) retainSites(ctx context.Context) {
	res, err := m.pruneSites(context.WithoutCancel(ctx), m.siteEnvironments(), PruneOptions{Keep: m.Config.Retention.Revisions, MinAge: AutoPruneMinAge})
	if err != nil {
		m.note("warning: removing old releases of static sites: %v (run `cutover prune` to retry)", err)
	}
	for _, r := range res {
		if len(r.Removed) > 0 {
			m.note("removed %d releases from s3://%s older than the newest %d (%s)", len(r.Removed), r.Bucket, m.Config.Retention.Revisions, Megabytes(r.FreedBytes))
		}
	}
}

// buildImages builds cfg's services (local.BuildImages) with a new build ID,
// labelling the images with this store's ID so that only its prune removes them.
func (m *Manager) buildImages(ctx context.Context, rt *docker.Runtime, cfg *config.Config, overrides map[string]string) (map[string]string, error) {
	storeID, err := m.Store.ID(ctx)
	if err != nil {
		return nil, err
	}
	return local.BuildImages(ctx, rt, cfg, local.NewBuildID(time.Now()), storeID, overrides, m.noteWriter())
}

// Megabytes says n bytes as "12.3 MB".
func Megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

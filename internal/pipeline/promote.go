package pipeline

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cutoverdev/cutover/internal/short"
	"github.com/cutoverdev/cutover/internal/store"
)

// RevisionSource is the provenance recorded in the revision a pipeline
// deploys: the commit it was built from. Promotion looks revisions up by it.
func RevisionSource(commit string) string { return "commit " + commit }

// Promotion is what a deploy to an environment with promote_from runs: the
// images (by digest) that the environment promoted from ran successfully
// for the same commit and the same service config.
type Promotion struct {
	From       string            `json:"from"`
	Deployment string            `json:"deployment,omitempty"` // the succeeded deployment of From that ran them
	Revision   string            `json:"revision,omitempty"`
	Images     map[string]string `json:"images,omitempty"`
	// Reason says why there is nothing to promote (Images is empty then).
	Reason string `json:"reason,omitempty"`
}

// promotionScan bounds how far back the deployments of the environment
// promoted from are searched for the commit.
const promotionScan = 50

// FindPromotion looks for the newest succeeded deployment of env `from`
// whose revision was built from commit with the same config as services
// (service name → config hash). It decides nothing by itself: the deploy
// action uses its Images when there are some.
func FindPromotion(ctx context.Context, st *store.Store, project, from, commit string, services map[string]string) (Promotion, error) {
	p := Promotion{From: from}
	ds, err := st.ListDeployments(ctx, project, from, promotionScan)
	if err != nil {
		return p, err
	}
	want := RevisionSource(commit)
	for _, d := range ds {
		if d.Status != store.DeploymentSucceeded {
			continue
		}
		rev, err := st.GetRevision(ctx, d.Revision)
		if err != nil {
			return p, err
		}
		if rev.Source != want {
			continue
		}
		images := map[string]string{}
		var differs []string
		for _, name := range slices.Sorted(maps.Keys(services)) {
			sr, ok := rev.Services[name]
			if !ok || sr.ConfigHash != services[name] {
				differs = append(differs, name)
				continue
			}
			images[name] = sr.Image
		}
		if len(differs) > 0 {
			p.Reason = fmt.Sprintf("%s ran %s with another config of %s (deployment %s)", from, short.SHA(commit), strings.Join(differs, ", "), d.ID)
			return p, nil
		}
		p.Deployment, p.Revision, p.Images = d.ID, rev.ID, images
		return p, nil
	}
	p.Reason = fmt.Sprintf("no succeeded deployment of %s ran %s", from, short.SHA(commit))
	return p, nil
}

// deployImages is what a deploy (and the approval before it) of env runs:
// for an environment promoted from another, the images that one verified
// for this commit; else, or when it never ran this commit, the images this
// execution built.
func (r *run) deployImages(ctx context.Context, env string) (map[string]string, *Promotion, error) {
	built := r.images()
	e := r.cfg.Environments[env]
	if e == nil || e.PromoteFrom == "" {
		return built, nil, nil
	}
	services := map[string]string{}
	for _, name := range r.cfg.ServiceNames() {
		services[name] = r.cfg.Services[name].ConfigHash()
	}
	p, err := FindPromotion(ctx, r.e.Store, r.cfg.Project, e.PromoteFrom, r.exec.Commit, services)
	if err != nil {
		return nil, nil, err
	}
	if len(p.Images) == 0 {
		return built, &p, nil
	}
	return p.Images, &p, nil
}

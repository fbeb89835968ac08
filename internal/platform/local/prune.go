package local

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
)

// PruneOptions says what Prune keeps.
type PruneOptions struct {
	Project      string
	Environments []string // the environments whose revisions are kept
	Keep         int      // the newest Keep revisions of each environment keep their images
	// MinAge keeps images younger than this: a build running now has made an
	// image that no revision names yet.
	MinAge time.Duration
	DryRun bool // say what would be removed, remove nothing
}

// PruneResult is what Prune removed (or, dry, would remove) and kept.
type PruneResult struct {
	Removed    []docker.ImageInfo `json:"removed"`
	Kept       int                `json:"kept"`
	FreedBytes int64              `json:"freed_bytes"`
}

// Prune removes the images cutover built for a project that nothing needs any
// more. An image is kept when one of the newest Keep revisions of an
// environment names it (by ID or digest), when a container of the project
// (in any state) uses it, or when it is younger than MinAge; every other image
// labelled with the project is removed with all its tags. It is safe to run
// at any time, also beside a deployment of another environment.
func Prune(ctx context.Context, rt *docker.Runtime, st *store.Store, o PruneOptions) (PruneResult, error) {
	if o.Keep < 1 {
		return PruneResult{}, fmt.Errorf("prune: keep %d revisions: must be at least 1", o.Keep)
	}
	images, err := rt.ProjectImages(ctx, o.Project)
	if err != nil {
		return PruneResult{}, err
	}
	keepIDs, err := rt.ImagesInUse(ctx, o.Project)
	if err != nil {
		return PruneResult{}, err
	}
	var refs []string // digest references of kept revisions
	for _, env := range o.Environments {
		revs, err := st.ListRevisions(ctx, o.Project, env, o.Keep)
		if err != nil {
			return PruneResult{}, err
		}
		for _, r := range revs {
			for _, s := range r.Services {
				if strings.HasPrefix(s.Image, "sha256:") {
					keepIDs[s.Image] = true
				} else {
					refs = append(refs, s.Image)
				}
			}
		}
	}
	var res PruneResult
	now := time.Now()
	for _, im := range images {
		keep := keepIDs[im.ID] || now.Sub(im.Created) < o.MinAge
		for _, d := range im.Digests {
			keep = keep || slices.Contains(refs, d)
		}
		if keep {
			res.Kept++
			continue
		}
		if !o.DryRun {
			if err := rt.RemoveImage(ctx, im.ID); err != nil {
				return res, err
			}
		}
		res.Removed = append(res.Removed, im)
		res.FreedBytes += im.Size
	}
	return res, nil
}

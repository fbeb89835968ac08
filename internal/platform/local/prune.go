package local

import (
	"context"
	"encoding/json"
	"errors"
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

// PruneResult is what Prune removed (or, dry, would remove), kept, and
// skipped because this store did not build them.
type PruneResult struct {
	Removed    []docker.ImageInfo `json:"removed"`
	Kept       int                `json:"kept"`
	FreedBytes int64              `json:"freed_bytes"`
	Skipped    []SkippedImage     `json:"skipped"`
}

// SkippedImage is an image labelled with the project that Prune leaves alone
// whatever its age, because it does not carry this store's ID.
type SkippedImage struct {
	ID     string   `json:"id"`
	Tags   []string `json:"tags"`
	Reason string   `json:"reason"`
}

// Prune removes the images this store built for a project that nothing
// needs any more. It considers only images labelled with the project AND
// with this store's ID (docker.LabelStore, set at build time): an image of
// the same project built by another store (another CUTOVER_HOME on the same
// engine) or by a cutover that did not label its images yet is skipped, as
// the records that could say whether it is needed are not here.
//
// Of its own images it keeps those named (by ID or digest) by the newest
// Keep revisions of each environment, by the revision an environment serves,
// by the target and previous revision of a deployment in progress, or by an
// execution that may still run (queued, running or waiting: its variables
// name the images it built, and its commit labels them); those a container
// (any container on the engine, in any state) uses; and those younger than
// MinAge. Every other one is removed with all its tags. It is safe to run at
// any time, also beside a deployment of another environment.
func Prune(ctx context.Context, rt *docker.Runtime, st *store.Store, o PruneOptions) (PruneResult, error) {
	if o.Keep < 1 {
		return PruneResult{}, fmt.Errorf("prune: keep %d revisions: must be at least 1", o.Keep)
	}
	storeID, err := st.ID(ctx)
	if err != nil {
		return PruneResult{}, err
	}
	// Read the records before the engine: an image built after this point
	// is younger than MinAge, or named by a record read here.
	needed, err := neededImages(ctx, st, o)
	if err != nil {
		return PruneResult{}, err
	}
	images, err := rt.ProjectImages(ctx, o.Project)
	if err != nil {
		return PruneResult{}, err
	}
	inUse, err := rt.ImagesInUse(ctx)
	if err != nil {
		return PruneResult{}, err
	}
	res := PruneResult{Removed: []docker.ImageInfo{}, Skipped: []SkippedImage{}}
	now := time.Now()
	for _, im := range images {
		if reason := notOurs(im, storeID); reason != "" {
			res.Skipped = append(res.Skipped, SkippedImage{ID: im.ID, Tags: im.Tags, Reason: reason})
			continue
		}
		if inUse[im.ID] || now.Sub(im.Created) < o.MinAge || needed.has(im) {
			res.Kept++
			continue
		}
		if !o.DryRun {
			if _, err := rt.RemoveImage(ctx, im.ID); err != nil {
				return res, err
			}
		}
		res.Removed = append(res.Removed, im)
		res.FreedBytes += im.Size
	}
	return res, nil
}

// notOurs says why Prune must leave im alone, or "" when this store built it.
func notOurs(im docker.ImageInfo, storeID string) string {
	switch owner := im.Labels[docker.LabelStore]; owner {
	case storeID:
		return ""
	case "":
		return "no " + docker.LabelStore + " label: built by a cutover that did not label images with their store, " +
			"so this store cannot tell whether another one needs it (remove it with `docker rmi` once no CUTOVER_HOME uses it)"
	default:
		return fmt.Sprintf("built by another cutover store (%s=%.8s…, another CUTOVER_HOME on this engine): "+
			"run `cutover prune` with that CUTOVER_HOME", docker.LabelStore, owner)
	}
}

// needed is what the store's records name: image IDs, digest references,
// and the commits of executions that may still run.
type needed struct {
	ids, refs, commits map[string]bool
}

func (n needed) has(im docker.ImageInfo) bool {
	if n.ids[im.ID] || n.commits[im.Labels[docker.LabelCommit]] {
		return true
	}
	return slices.ContainsFunc(im.Digests, func(d string) bool { return n.refs[d] }) ||
		slices.ContainsFunc(im.Tags, func(t string) bool { return n.refs[t] })
}

func (n needed) add(image string) {
	if strings.HasPrefix(image, "sha256:") {
		n.ids[image] = true
	} else if image != "" {
		n.refs[image] = true
	}
}

func (n needed) addRevision(ctx context.Context, st *store.Store, id string) error {
	if id == "" {
		return nil
	}
	rev, err := st.GetRevision(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, s := range rev.Services {
		n.add(s.Image)
	}
	return nil
}

// NeededRefs returns whether a record of the project (see Prune) names an
// image or a static site's release (site@sha256:...) by ref, as read now.
func NeededRefs(ctx context.Context, st *store.Store, o PruneOptions) (func(ref string) bool, error) {
	n, err := neededImages(ctx, st, o)
	if err != nil {
		return nil, err
	}
	return func(ref string) bool { return n.refs[ref] || n.ids[ref] }, nil
}

// neededImages reads from the store every image a record of the project
// still needs (see Prune).
func neededImages(ctx context.Context, st *store.Store, o PruneOptions) (needed, error) {
	n := needed{ids: map[string]bool{}, refs: map[string]bool{}, commits: map[string]bool{}}
	envs := slices.Clone(o.Environments)
	states, err := st.ListEnvStates(ctx, o.Project)
	if err != nil {
		return n, err
	}
	for _, s := range states {
		if err := n.addRevision(ctx, st, s.Revision); err != nil {
			return n, err
		}
		if !slices.Contains(envs, s.Environment) {
			envs = append(envs, s.Environment)
		}
	}
	for _, env := range envs {
		if slices.Contains(o.Environments, env) {
			revs, err := st.ListRevisions(ctx, o.Project, env, o.Keep)
			if err != nil {
				return n, err
			}
			for _, r := range revs {
				for _, s := range r.Services {
					n.add(s.Image)
				}
			}
		}
		d, err := st.ActiveDeployment(ctx, o.Project, env)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		for _, id := range []string{d.Revision, d.PreviousRevision} {
			if err := n.addRevision(ctx, st, id); err != nil {
				return n, err
			}
		}
	}
	execs, err := st.ActiveExecutions(ctx, o.Project)
	if err != nil {
		return n, err
	}
	for _, x := range execs {
		if x.Commit != "" {
			n.commits[x.Commit] = true
		}
		// The pipeline's variables are a JSON object of strings; the images
		// its build actions made are among them (CUTOVER_IMAGE_*).
		var vars map[string]string
		if json.Unmarshal(x.Variables, &vars) == nil {
			for _, v := range vars {
				n.add(v)
			}
		}
	}
	return n, nil
}

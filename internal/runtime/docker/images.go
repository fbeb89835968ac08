package docker

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// ImageInfo is a local image that cutover built for a project.
type ImageInfo struct {
	ID      string // sha256:...
	Tags    []string
	Digests []string // repo@sha256:... references it was pushed or pulled as
	Size    int64
	Created time.Time
	Labels  map[string]string `json:"-"`
}

// ProjectImages lists the local images labelled dev.cutover.project=project:
// the images cutover built for it.
func (r *Runtime) ProjectImages(ctx context.Context, project string) ([]ImageInfo, error) {
	res, err := r.client.ImageList(ctx, client.ImageListOptions{
		Filters: make(client.Filters).Add("label", LabelProject+"="+project),
	})
	if err != nil {
		return nil, fmt.Errorf("listing images: %s", engineMessage(err))
	}
	out := make([]ImageInfo, 0, len(res.Items))
	for _, im := range res.Items {
		out = append(out, ImageInfo{ID: im.ID, Tags: im.RepoTags, Digests: im.RepoDigests, Size: im.Size, Created: time.Unix(im.Created, 0), Labels: im.Labels})
	}
	return out, nil
}

// ImagesInUse returns the IDs of the images of every container on the
// engine, in any state and whoever made it: an image a container still
// refers to is kept.
func (r *Runtime) ImagesInUse(ctx context.Context) (map[string]bool, error) {
	res, err := r.client.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %s", engineMessage(err))
	}
	used := map[string]bool{}
	for _, c := range res.Items {
		used[c.ImageID] = true
	}
	return used, nil
}

// RemoveImage removes the image with this ID (or reference), every tag of it
// and its untagged parents, once no build is in progress on the engine (see
// lockImages). It says whether it removed it: an image already gone, or being
// removed by someone else, is not an error. The caller makes sure no
// container uses it.
func (r *Runtime) RemoveImage(ctx context.Context, id string) (bool, error) {
	unlock, err := r.lockImages(ctx, true)
	if err != nil {
		return false, fmt.Errorf("removing image %.19s: %w", id, err)
	}
	defer unlock()
	_, err = r.client.ImageRemove(ctx, id, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err), cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress"):
		return false, nil
	}
	return false, fmt.Errorf("removing image %.19s: %s", id, engineMessage(err))
}

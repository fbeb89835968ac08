package ecr

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Push copies a local Docker image (ID or reference) to repoURI under every
// tag and returns its manifest digest. Tags are immutable: a tag that
// already names the same digest is left alone, one naming another digest
// is an error.
func (c *Client) Push(ctx context.Context, imageRef, repoURI string, tags []string) (string, error) {
	if len(tags) == 0 {
		return "", errors.New("ecr: push needs at least one tag")
	}
	if c.o.Docker == nil {
		return "", errors.New("ecr: no Docker client to read local images from")
	}
	auth := c.o.Authenticator
	if auth == nil {
		var err error
		if _, auth, err = c.Login(ctx); err != nil {
			return "", err
		}
	}
	img, err := daemon.Image(localRef(imageRef), daemon.WithClient(c.o.Docker), daemon.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("ecr: cannot read local image %s: %v", imageRef, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("ecr: cannot compute digest of %s: %v", imageRef, err)
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth)}
	var todo []name.Tag
	for _, t := range tags {
		tag, err := name.NewTag(repoURI + ":" + t)
		if err != nil {
			return "", fmt.Errorf("ecr: bad image reference %s:%s: %v", repoURI, t, err)
		}
		existing, err := remote.Head(tag, opts...)
		var terr *transport.Error
		switch {
		case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
			todo = append(todo, tag)
		case err != nil:
			return "", fmt.Errorf("ecr: cannot check tag %s: %v", tag, err)
		case existing.Digest == digest:
			c.o.Log.Info("tag already holds this image", "tag", tag.String(), "digest", digest.String())
		default:
			return "", fmt.Errorf("ecr: tag %s already holds %s and tags are immutable; push %s under a new tag (a new build id)", tag, existing.Digest, digest)
		}
	}
	if len(todo) == 0 {
		return digest.String(), nil
	}
	if err := remote.Write(todo[0], img, opts...); err != nil {
		return "", fmt.Errorf("ecr: cannot push %s to %s: %v", imageRef, todo[0], err)
	}
	for _, tag := range todo[1:] {
		if err := remote.Tag(tag, img, opts...); err != nil {
			return "", fmt.Errorf("ecr: cannot tag %s: %v", tag, err)
		}
	}
	return digest.String(), nil
}

// localRef names a local image for pkg/v1/daemon, which only passes the
// name to the engine: image IDs ("sha256:…") are not valid references in
// go-containerregistry's grammar but are what the engine accepts.
type localRef string

func (r localRef) Context() name.Repository {
	repo, _ := name.NewRepository("local/image")
	return repo
}
func (r localRef) Identifier() string    { return string(r) }
func (r localRef) Name() string          { return string(r) }
func (r localRef) String() string        { return string(r) }
func (r localRef) Scope(a string) string { return r.Context().Scope(a) }

var _ name.Reference = localRef("")

// DigestRef is repoURI@digest, the form task definitions take.
func DigestRef(repoURI string, digest string) string {
	return repoURI + "@" + digest
}

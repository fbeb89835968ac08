package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/client"

	"github.com/cutoverdev/cutover/internal/short"
)

// anonymous is the X-Registry-Auth value for "no credentials", for
// registries the runtime has none for: old engines reject a push that
// carries no auth header at all.
// It is an empty registry.AuthConfig ("{}"), base64url-encoded.
var anonymous = base64.URLEncoding.EncodeToString([]byte("{}"))

// UseRegistryCredential makes pushes to and pulls from the registry at host
// (host:port, as in image references) authenticate as user. The engine
// sends them when the registry asks; they are never logged.
func (r *Runtime) UseRegistryCredential(host, user, password string) {
	b, _ := json.Marshal(struct {
		Username      string `json:"username"`
		Password      string `json:"password"`
		ServerAddress string `json:"serveraddress"`
	}{user, password, host})
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.auths == nil {
		r.auths = map[string]string{}
	}
	r.auths[host] = base64.URLEncoding.EncodeToString(b)
}

// registryAuth is the X-Registry-Auth value for named's registry.
func (r *Runtime) registryAuth(named reference.Named) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.auths[reference.Domain(named)]; ok {
		return a
	}
	return anonymous
}

// Tag gives the local image imageID (sha256:... or any reference the engine
// knows) the reference ref, such as 127.0.0.1:5000/shop/backend:sha-abc. An
// existing tag ref is moved to the image. Idempotent.
func (r *Runtime) Tag(ctx context.Context, imageID, ref string) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("tag %s: %q is not a valid image reference: %v (use registry/repository:tag, lowercase repository)", short.ID(imageID), ref, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return fmt.Errorf("tag %s: %s names a digest; a tag cannot (use registry/repository:tag)", short.ID(imageID), ref)
	}
	if _, err := r.client.ImageTag(ctx, client.ImageTagOptions{Source: imageID, Target: ref}); err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("tag %s as %s: image not found locally (build it first)", short.ID(imageID), ref)
		}
		return fmt.Errorf("tag %s as %s: %s", short.ID(imageID), ref, engineMessage(err))
	}
	r.log.Debug("tagged image", "image", imageID, "ref", ref)
	return nil
}

// Push pushes the local image ref (registry/repository:tag; without a tag,
// latest) to its registry, with the credential given for it
// (UseRegistryCredential) if any, and returns the digest
// (sha256:...) of the manifest the registry stored, which deploys pin. Pushing
// the same image again is cheap and returns the same digest.
func (r *Runtime) Push(ctx context.Context, ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("push %s: not a valid image reference: %v (use registry/repository:tag)", ref, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return "", fmt.Errorf("push %s: a digest reference cannot be pushed (push registry/repository:tag)", ref)
	}
	res, err := r.client.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: r.registryAuth(named)})
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("push %s: %w", ref, ctx.Err())
		}
		if cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("push %s: no local image has this tag (tag the built image first)", ref)
		}
		msg := daemonMessage(err)
		return "", fmt.Errorf("push %s: %s%s", ref, msg, pushHint(msg, named))
	}
	digest, err := readPushStream(ctx, res)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("push %s: %w", ref, ctx.Err())
		}
		return "", fmt.Errorf("push %s: %s%s", ref, oneLine(err.Error()), pushHint(err.Error(), named))
	}
	if digest == "" {
		return "", fmt.Errorf("push %s: the engine did not report the pushed digest", ref)
	}
	r.log.Debug("pushed image", "ref", ref, "digest", digest)
	return digest, nil
}

// statusDigest matches the engine's closing status line when it sends no aux
// data: "sha-abc: digest: sha256:... size: 528".
var statusDigest = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`)

// readPushStream decodes the push's JSON progress stream: the first error
// message ends it; the digest comes from the aux record (or the status line).
func readPushStream(ctx context.Context, res client.ImagePushResponse) (string, error) {
	var digest string
	for msg, err := range res.JSONMessages(ctx) {
		if err != nil {
			return "", fmt.Errorf("reading the push output: %w", err)
		}
		if msg.Error != nil {
			return "", errors.New(strings.TrimSpace(msg.Error.Message))
		}
		if msg.Aux != nil {
			var aux struct{ Digest string }
			if json.Unmarshal(*msg.Aux, &aux) == nil && aux.Digest != "" {
				digest = aux.Digest
			}
		}
		if digest == "" {
			if m := statusDigest.FindStringSubmatch(msg.Status); m != nil {
				digest = m[1]
			}
		}
	}
	return digest, nil
}

// Pull pulls ref (registry/repository:tag or registry/repository@sha256:...),
// with the credential given for its registry if any, and returns the local image ID. Pulling an image that is
// already present only checks the registry.
func (r *Runtime) Pull(ctx context.Context, ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("pull %s: not a valid image reference: %v (use registry/repository:tag or @sha256:...)", ref, err)
	}
	res, err := r.client.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: r.registryAuth(named)})
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("pull %s: %w", ref, ctx.Err())
		}
		msg := daemonMessage(err)
		return "", fmt.Errorf("pull %s: %s%s", ref, msg, pushHint(msg, named))
	}
	for msg, err := range res.JSONMessages(ctx) {
		if err != nil {
			if ctx.Err() != nil {
				return "", fmt.Errorf("pull %s: %w", ref, ctx.Err())
			}
			return "", fmt.Errorf("pull %s: reading the pull output: %v", ref, err)
		}
		if msg.Error != nil {
			msg := strings.TrimSpace(msg.Error.Message)
			return "", fmt.Errorf("pull %s: %s%s", ref, oneLine(msg), pushHint(msg, named))
		}
	}
	id, err := r.ImageID(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	r.log.Debug("pulled image", "ref", ref, "id", id)
	return id, nil
}

// pushHint says what to do about the engine's most common push and pull
// failures.
func pushHint(msg string, named reference.Named) string {
	switch {
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host"):
		return fmt.Sprintf(" (is the registry running at %s?)", reference.Domain(named))
	case strings.Contains(msg, "does not exist locally"):
		return " (tag the built image with this reference first)"
	case strings.Contains(msg, "manifest unknown") || strings.Contains(msg, "not found"):
		return " (push it first, or check the repository, tag or digest)"
	}
	return ""
}

// daemonMessage is the engine's error on one line, without the client's
// "Error response from daemon:" preamble.
func daemonMessage(err error) string {
	return oneLine(strings.TrimPrefix(engineMessage(err), "Error response from daemon: "))
}

// oneLine joins a multi-line engine message so errors stay one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

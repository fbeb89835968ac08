package registry

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/distribution/reference"
)

// manifestTypes are the manifest media types we accept, single-image and
// multi-platform, OCI and Docker; without them the registry would answer for
// a schema it may not hold the tag in.
var manifestTypes = strings.Join([]string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

// httpClient bounds a registry query even when the caller's context has no
// deadline.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// ManifestDigest asks the registry at addr (host:port, loopback) for the
// digest (sha256:...) of the manifest that repo:tag names, through the
// registry HTTP API (HEAD /v2/<repo>/manifests/<tag>). Safe for concurrent
// use; it only reads.
func ManifestDigest(ctx context.Context, addr, repo, tag string) (string, error) {
	if _, err := loopbackAddr(addr); err != nil {
		return "", err
	}
	ref := addr + "/" + repo + ":" + tag
	if _, err := reference.ParseNamed(ref); err != nil {
		return "", fmt.Errorf("registry: %q is not a valid image reference: %v (repository: lowercase path such as project/service; tag: letters, digits, '.', '_', '-')", ref, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, "http://"+addr+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		return "", fmt.Errorf("registry: %s: %w", ref, err)
	}
	req.Header.Set("Accept", manifestTypes)
	resp, err := httpClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("registry: manifest %s: %w", ref, ctx.Err())
		}
		return "", fmt.Errorf("registry: cannot reach the registry at %s: %v (is it running?)", addr, err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return "", fmt.Errorf("registry: manifest %s not found (push the image first)", ref)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("registry: manifest %s: the registry answered %s", ref, resp.Status)
	}
	digest := resp.Header.Get("Docker-Content-Digest")
	if digest == "" {
		return "", fmt.Errorf("registry: manifest %s: the registry sent no Docker-Content-Digest header", ref)
	}
	return digest, nil
}

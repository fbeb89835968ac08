package release

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
)

// TestECSImages: what becomes of each service's image on ECS. The
// pipeline's own builds (image IDs of this machine's engine) go to ECR and
// are deployed by digest; a digest is deployed as it is; a tag, or an image
// the execution did not build, is refused from the pipeline and from the
// command line alike, before anything reaches AWS.
func TestECSImages(t *testing.T) {
	cfg := &config.Config{Project: "shop", Services: map[string]*config.Service{"backend": {}, "frontend": {}}}
	digest := "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-backend@sha256:" + strings.Repeat("1", 64)
	localID := "sha256:" + strings.Repeat("2", 64)
	cases := []struct {
		name       string
		images     map[string]string
		pipeline   bool
		build      []string
		push       []string
		err, usage string
	}{
		{"command line builds what is not given", map[string]string{"backend": digest}, false, []string{"frontend"}, nil, "", ""},
		{"pipeline pushes its builds", map[string]string{"backend": digest, "frontend": localID}, true, nil, []string{"frontend"}, "", ""},
		{"pipeline never builds", map[string]string{"backend": digest}, true, nil, nil, "service frontend has no image built in this execution", ""},
		{"pipeline refuses a tag", map[string]string{"backend": "shop/backend:latest", "frontend": localID}, true, nil, nil, "image shop/backend:latest is neither pinned by digest nor built by this execution", ""},
		{"command line refuses a tag", map[string]string{"backend": "shop/backend:1"}, false, nil, nil, "", "needs an image pinned by digest"},
		{"command line refuses a local image ID", map[string]string{"backend": localID, "frontend": digest}, false, nil, nil, "", "needs an image pinned by digest"},
		{"unknown service", map[string]string{"db": digest}, true, nil, nil, "", `no service named "db"`},
	}
	for _, c := range cases {
		build, push, err := ecsImages(cfg, "production", c.images, c.pipeline)
		var usage UsageError
		switch {
		case c.err == "" && c.usage == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || errors.As(err, &usage)):
			t.Errorf("%s: err %v, want one saying %q", c.name, err, c.err)
		case c.usage != "" && (!errors.As(err, &usage) || !strings.Contains(err.Error(), c.usage)):
			t.Errorf("%s: err %v, want a usage error saying %q", c.name, err, c.usage)
		case !slices.Equal(build, c.build) || !slices.Equal(push, c.push):
			t.Errorf("%s: build %v push %v, want %v %v", c.name, build, push, c.build, c.push)
		}
	}
}

package release

import (
	"errors"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
)

// TestECSImagesLeaveStaticServicesOut: a static service has no image on
// ECS, neither built, pushed nor deployed: the pipeline's local image of it
// is dropped (its files are published instead), and --image for it is
// refused on the command line.
func TestECSImagesLeaveStaticServicesOut(t *testing.T) {
	cfg := &config.Config{Project: "shop", Services: map[string]*config.Service{"backend": {}, "frontend": {Static: &config.Static{Dir: "dist"}}}}
	digest := "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-backend@sha256:" + strings.Repeat("1", 64)
	localID := "sha256:" + strings.Repeat("2", 64)

	images := map[string]string{"backend": localID, "frontend": localID}
	build, push, err := ecsImages(cfg, "production", images, true)
	if err != nil || len(build) != 0 || len(push) != 1 || push[0] != "backend" || images["frontend"] != "" {
		t.Errorf("pipeline: build %v push %v images %v: %v", build, push, images, err)
	}
	images = map[string]string{"backend": digest}
	if build, push, err = ecsImages(cfg, "production", images, false); err != nil || len(build) != 0 || len(push) != 0 {
		t.Errorf("command line: build %v push %v: %v", build, push, err)
	}
	_, _, err = ecsImages(cfg, "production", map[string]string{"backend": digest, "frontend": digest}, false)
	var usage UsageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "service frontend is static") {
		t.Errorf("--image for a static service: %v", err)
	}
}

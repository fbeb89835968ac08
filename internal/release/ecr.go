package release

// Images of an ecs environment go through ECR: one repository per service,
// pushed by the build id and deployed by digest once the scan passes.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/ecr"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
)

// buildAndPushECR pushes every service's local image (service → image ID,
// from local.BuildImages) to ECR and returns service → REPO@sha256:digest
// once each image's scan is below ecr.fail_on_severity.
//
// Images are tagged with the build id only: repositories have immutable
// tags, so a moving tag such as "latest" would be refused on the second push.
func buildAndPushECR(ctx context.Context, cfg *config.Config, env string, o ecr.Options, rt *docker.Runtime, images map[string]string, out io.Writer) (map[string]string, error) {
	e := cfg.Environments[env]
	if e == nil || e.ECS == nil {
		return nil, fmt.Errorf("environment %s has no ecs section: ECR needs its region and account", env)
	}
	api, err := ecr.NewAPI(ctx, ecr.ClientOptions{Region: e.ECS.Region, Profile: e.ECS.Profile, Endpoint: e.ECS.Endpoint})
	if err != nil {
		return nil, err
	}
	if o.Docker == nil && rt != nil {
		o.Docker = rt.EngineClient()
	}
	c, err := ecr.New(api, o)
	if err != nil {
		return nil, err
	}
	if o.Authenticator == nil {
		// One token for every push (valid 12 hours).
		_, auth, err := c.Login(ctx)
		if err != nil {
			return nil, err
		}
		o.Authenticator = auth
		if c, err = ecr.New(api, o); err != nil {
			return nil, err
		}
	}
	fallbackID := local.NewBuildID(time.Now())
	refs := map[string]string{}
	for _, svc := range cfg.ServiceNames() {
		id, ok := images[svc]
		if !ok {
			return nil, fmt.Errorf("service %s: no image was built for it", svc)
		}
		repo := c.RepositoryName(cfg.Project, svc)
		uri, err := c.EnsureRepository(ctx, repo)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", svc, err)
		}
		tag := cmp.Or(imageBuildID(ctx, rt, id), fallbackID)
		fmt.Fprintf(out, "%s: pushing %s:%s\n", svc, uri, tag)
		digest, err := c.Push(ctx, id, uri, []string{tag})
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", svc, err)
		}
		fmt.Fprintf(out, "%s: pushed %s; waiting for the vulnerability scan\n", svc, digest)
		if err := c.WaitScan(ctx, repo, digest, c.FailAt()); err != nil {
			return nil, fmt.Errorf("service %s: %w", svc, err)
		}
		refs[svc] = ecr.DigestRef(uri, digest)
		fmt.Fprintf(out, "%s: scan passed: %s\n", svc, refs[svc])
	}
	if len(refs) == 0 {
		return nil, errors.New("no services to push")
	}
	return refs, nil
}

// imageBuildID reads the build id local.BuildImages labels images with; an
// image used as is (service `image:` or --image) has none.
func imageBuildID(ctx context.Context, rt *docker.Runtime, id string) string {
	res, err := rt.EngineClient().ImageInspect(ctx, id)
	if err != nil || res.Config == nil {
		return ""
	}
	return res.Config.Labels["dev.cutover.build"]
}

package config

import (
	"strings"
	"testing"
)

func staticECSYAML(strategy, frontend, backend, ecs string) string {
	return `version: 1
project: shop
services:
  backend: { image: shop/backend:1, port: 3001, route: { path_prefix: /api } }
  frontend: { build: { commands: [npm run build] }, port: 80, route: { path_prefix: / }, static: { dir: dist } }
environments:
  production:
    platform: ecs
    strategy: { type: ` + strategy + ` }
    ecs:
      cluster: production
      subnets: [subnet-1]
      ` + ecs + `
      services:
        backend: { ` + backend + ` }
        frontend: { ` + frontend + ` }
`
}

// TestECSStaticService: a static service on ECS is a bucket and a
// distribution; it gets no ECS defaults and no CodeDeploy group.
func TestECSStaticService(t *testing.T) {
	c, err := Parse("cutover.yaml", []byte(staticECSYAML("blue_green", "bucket: shop-site, distribution: E2QWRUHAPOMQZL", "", "codedeploy: { application: shop }")))
	if err != nil {
		t.Fatal(err)
	}
	f := c.Environments["production"].ECS.Services["frontend"]
	if f.Bucket != "shop-site" || f.Distribution != "E2QWRUHAPOMQZL" || f.Service != "" || f.Container != "" {
		t.Errorf("frontend %+v", f)
	}
	if _, err := Parse("cutover.yaml", []byte(staticECSYAML("rolling", "", "", "stack: shop-app-production"))); err != nil {
		t.Errorf("with a stack, bucket and distribution come from its outputs: %v", err)
	}
}

// TestECSStaticServiceMistakes: what does not fit a static service, or a
// container service, is refused with the field and what to do.
func TestECSStaticServiceMistakes(t *testing.T) {
	p := "environments.production.ecs.services."
	for _, c := range []struct{ src, want string }{
		{staticECSYAML("rolling", "distribution: E2QWRUHAPOMQZL", "", ""), p + "frontend.bucket: missing"},
		{staticECSYAML("rolling", "bucket: shop-site", "", ""), p + "frontend.distribution: missing"},
		{staticECSYAML("rolling", "bucket: Shop_Site, distribution: E1", "", ""), `frontend.bucket: "Shop_Site" is not an S3 bucket name`},
		{staticECSYAML("rolling", "bucket: shop-site, distribution: d111111abcdef8.cloudfront.net", "", ""), `frontend.distribution: "d111111abcdef8.cloudfront.net" is not a CloudFront distribution ID`},
		{staticECSYAML("rolling", "bucket: shop-site, distribution: E1, service: web, cpu: \"256\"", "", ""), p + "frontend.cpu: is an ECS setting, but services.frontend is static"},
		{staticECSYAML("rolling", "bucket: shop-site, distribution: E1, service: web", "", ""), p + "frontend.service: is an ECS setting"},
		{staticECSYAML("rolling", "bucket: shop-site, distribution: E1", "bucket: api-files", ""), p + "backend: bucket and distribution are for static services only"},
	} {
		_, err := Parse("cutover.yaml", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want %q, got %v", c.want, err)
		}
	}
	allStatic := strings.Replace(staticECSYAML("rolling", "bucket: shop-site, distribution: E1", "bucket: api-site, distribution: E2", ""),
		"  backend: { image: shop/backend:1,", "  backend: { build: { commands: [make] }, static: { dir: out },", 1)
	if _, err := Parse("cutover.yaml", []byte(allStatic)); err == nil || !strings.Contains(err.Error(), "environments.production.ecs: every service is static") {
		t.Errorf("all static: %v", err)
	}
	src := strings.Replace(staticECSYAML("rolling", "", "", ""), "        frontend: {  }\n", "", 1)
	if _, err := Parse("cutover.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), "no entry for static service frontend (add services: { frontend: { bucket: BUCKET, distribution: DISTRIBUTION_ID } })") {
		t.Errorf("no entry: %v", err)
	}
}

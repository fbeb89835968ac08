package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cutoverdev/cutover/internal/platform/ecs"
	"github.com/cutoverdev/cutover/internal/store"
)

// staticSite is a static service's bucket and distribution in moto, and a
// build context whose build command writes dist/ from its VERSION file.
type staticSite struct {
	t                    *testing.T
	s3                   *s3.Client
	cf                   *cloudfront.Client
	bucket, distribution string
	context              string // the build context (web/)
}

// newStaticSite creates the bucket and a distribution whose S3 origin reads
// it (as the exported app stack does, origin "site" on the bucket's
// regional domain name) and the frontend's sources next to cutover.yaml.
func newStaticSite(t *testing.T, moto, dir, bucket string) *staticSite {
	ctx := context.Background()
	sc, err := ecs.NewSiteClients(ctx, ecs.ClientOptions{Region: "us-east-1", Endpoint: moto, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	s := &staticSite{t: t, s3: sc.S3.(*s3.Client), cf: sc.CloudFront.(*cloudfront.Client), bucket: bucket, context: filepath.Join(dir, "web")}
	if _, err := s.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket}); err != nil {
		if _, err := s.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
			t.Fatal(err)
		}
	}
	dist, err := s.cf.CreateDistribution(ctx, &cloudfront.CreateDistributionInput{DistributionConfig: &cftypes.DistributionConfig{
		CallerReference: aws.String(bucket), Comment: aws.String("shop staging frontend"), Enabled: aws.Bool(true), DefaultRootObject: aws.String("index.html"),
		Origins: &cftypes.Origins{Quantity: aws.Int32(1), Items: []cftypes.Origin{{Id: aws.String("site"),
			DomainName: aws.String(bucket + ".s3.us-east-1.amazonaws.com"), S3OriginConfig: &cftypes.S3OriginConfig{OriginAccessIdentity: aws.String("")}}}},
		DefaultCacheBehavior: &cftypes.DefaultCacheBehavior{TargetOriginId: aws.String("site"), ViewerProtocolPolicy: cftypes.ViewerProtocolPolicyRedirectToHttps,
			CachePolicyId: aws.String("658327ea-f89d-4fab-a63d-7e88639e58f6")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.distribution = aws.ToString(dist.Distribution.Id)
	build := `set -e
v=$(cat VERSION)
rm -rf dist && mkdir -p dist/assets
printf '<!doctype html><title>%s</title><script src="/assets/app-%s.js"></script>' "$v" "$v" > dist/index.html
printf 'console.log("%s")' "$v" > "dist/assets/app-$v.js"
printf 'body{}' > dist/assets/style.css
`
	for name, content := range map[string]string{"build.sh": build, "VERSION": "a1b2c3d4e5", "Dockerfile": "FROM scratch\nCOPY dist /site\n"} {
		if err := os.MkdirAll(s.context, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.context, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *staticSite) version(v string) {
	if err := os.WriteFile(filepath.Join(s.context, "VERSION"), []byte(v), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// objects are the bucket's keys with their Content-Type and Cache-Control.
func (s *staticSite) objects() map[string][2]string {
	s.t.Helper()
	ctx := context.Background()
	list, err := s.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket})
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string][2]string{}
	for _, o := range list.Contents {
		h, err := s.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: o.Key})
		if err != nil {
			s.t.Fatal(err)
		}
		out[aws.ToString(o.Key)] = [2]string{aws.ToString(h.ContentType), aws.ToString(h.CacheControl)}
	}
	return out
}

// served is the release the distribution's origin path points at.
func (s *staticSite) served() string {
	s.t.Helper()
	cfg, err := s.cf.GetDistributionConfig(context.Background(), &cloudfront.GetDistributionConfigInput{Id: &s.distribution})
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimPrefix(aws.ToString(cfg.DistributionConfig.Origins.Items[0].OriginPath), "/releases/")
}

// invalidations are the paths of each invalidation of the distribution.
func (s *staticSite) invalidations() [][]string {
	s.t.Helper()
	ctx := context.Background()
	list, err := s.cf.ListInvalidations(ctx, &cloudfront.ListInvalidationsInput{DistributionId: &s.distribution})
	if err != nil {
		s.t.Fatal(err)
	}
	var out [][]string
	for _, i := range list.InvalidationList.Items {
		inv, err := s.cf.GetInvalidation(ctx, &cloudfront.GetInvalidationInput{DistributionId: &s.distribution, Id: i.Id})
		if err != nil {
			s.t.Fatal(err)
		}
		out = append(out, inv.Invalidation.InvalidationBatch.Paths.Items)
	}
	return out
}

// newStaticECS is an ECS environment on moto whose cutover.yaml has a
// static frontend published to a site (staticYAML).
func newStaticECS(t *testing.T) (*ecsE2E, *staticSite) {
	e := newECSE2E(t, ecstypes.DeploymentControllerTypeEcs, "    strategy: { type: rolling }\n")
	site := newStaticSite(t, e.moto, filepath.Dir(e.file), "shop-staging-frontend")
	if err := os.WriteFile(e.file, []byte(staticYAML(e.moto, "{ bucket: "+site.bucket+", distribution: "+site.distribution+" }")), 0o644); err != nil {
		t.Fatal(err)
	}
	return e, site
}

// staticYAML is cutover.yaml with a container backend and a static
// frontend; site is the frontend's ecs entry.
func staticYAML(moto, site string) string {
	return `version: 1
project: shop
services:
  backend: { image: shop/backend:1, port: 3001, route: { path_prefix: /api } }
  frontend:
    build: { context: web, commands: ["sh build.sh"] }
    port: 80
    route: { path_prefix: / }
    static: { dir: dist, spa: true }
environments:
  staging:
    platform: ecs
    strategy: { type: rolling }
    ecs:
      region: us-east-1
      endpoint: ` + moto + `
      cluster: shop
      execution_role_arn: arn:aws:iam::123456789012:role/exec
      log_group: /shop/staging
      subnets: [subnet-0a1b2c3d]
      services:
        backend: { service: shop-backend, cpu: "256", memory: "512" }
        frontend: ` + site + `
`
}

// TestECSStaticDeployAndRollback: on ECS, cutover deploy builds a static
// service's files with its build commands and publishes them to its
// bucket under releases/<digest>/ (headers per file), then points the
// distribution at them and invalidates it; the frontend never becomes an
// ECS deployment. A second deploy adds a release next to the first;
// rollback points the distribution back without uploading anything;
// status shows the release served.
func TestECSStaticDeployAndRollback(t *testing.T) {
	e, site := newStaticECS(t)
	dir := filepath.Dir(e.file)

	if _, errOut, err := e.run("deploy", "staging", "--image", "backend="+backendRef, "--image", "frontend="+frontendRef); err == nil || !strings.Contains(errOut, "service frontend is static") {
		t.Errorf("--image for a static service: %v\n%s", err, errOut)
	}
	out, errOut, err := e.run("deploy", "staging", "--image", "backend="+backendRef)
	if err != nil {
		t.Fatalf("deploy: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	first := site.served()
	if len(first) != 64 {
		t.Fatalf("origin path after the deploy: %q\n%s", first, errOut)
	}
	p := "releases/" + first + "/"
	want := map[string][2]string{
		p + "index.html":               {"text/html; charset=utf-8", "no-cache"},
		p + "assets/app-a1b2c3d4e5.js": {"text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		p + "assets/style.css":         {"text/css; charset=utf-8", "no-cache"},
		"releases/" + first + ".json":  {"application/json", "no-store"},
	}
	got := site.objects()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("bucket: %v", got)
	}
	if inv := site.invalidations(); len(inv) != 1 || !slices.Equal(inv[0], []string{"/*"}) {
		t.Errorf("invalidations %v", inv)
	}
	if !strings.Contains(errOut, "frontend: running sh build.sh") || !strings.Contains(errOut, "now serves release "+first[:12]) {
		t.Errorf("deploy output:\n%s", errOut)
	}
	// The frontend took no part in the ECS deployment: no task definition.
	if _, err := e.ecs.DescribeTaskDefinition(context.Background(), &awsecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("shop-staging-frontend")}); err == nil {
		t.Error("a task definition was registered for the static frontend")
	}
	h := e.history()
	if len(h) != 1 || h[0].Status != store.DeploymentSucceeded {
		t.Fatalf("history %+v", h)
	}
	rev := e.revision(h[0].Revision)
	if rev.Services["frontend"].Image != "site@sha256:"+first || rev.Services["backend"].Image != backendRef {
		t.Errorf("revision %+v", rev.Services)
	}

	// A second release.
	site.version("f6e5d4c3b2")
	if out, errOut, err := e.run("deploy", "staging", "--image", "backend="+backendRef); err != nil {
		t.Fatalf("second deploy: %v\n%s%s", err, out, errOut)
	}
	second := site.served()
	if second == first || len(site.objects()) != 2*len(want) {
		t.Errorf("second release %s next to %s: %v", second, first, site.objects())
	}

	// Rollback: the first release is served again, nothing is uploaded.
	before := site.objects()
	if out, errOut, err := e.run("rollback", "staging"); err != nil {
		t.Fatalf("rollback: %v\n%s%s", err, out, errOut)
	}
	if got := site.served(); got != first {
		t.Errorf("after rollback the distribution serves %s, want the first release %s", got, first)
	}
	if after := site.objects(); len(after) != len(before) {
		t.Errorf("rollback changed the bucket: %v", after)
	}
	if inv := site.invalidations(); len(inv) != 3 {
		t.Errorf("%d invalidations, want 3 (deploy, deploy, rollback)", len(inv))
	}
	if h := e.history(); len(h) != 3 || h[0].Status != store.DeploymentSucceeded || h[0].Revision != h[2].Revision {
		t.Errorf("history after rollback %+v", h)
	}

	// The exported pipeline's publish action on the same built files (the
	// second version's, still in web/dist) makes the same release as
	// cutover deploy did: same digest, nothing uploaded again.
	before = site.objects()
	out, errOut, err = e.run("publish-static", filepath.Join(site.context, "dist"), "--service", "frontend", "--bucket", site.bucket,
		"--distribution", site.distribution, "--region", "us-east-1", "--endpoint", e.moto)
	if err != nil || !strings.Contains(errOut, "release "+second[:12]+" is in bucket "+site.bucket+" already") {
		t.Errorf("publish-static: %v\n%s%s", err, out, errOut)
	}
	if got := site.served(); got != second || len(site.objects()) != len(before) {
		t.Errorf("publish-static of the second version's files: serving %s (want %s), bucket %v", got, second, site.objects())
	}
	if _, errOut, err := e.run("publish-static", filepath.Join(dir, "cutover.yaml"), "--service", "frontend", "--bucket", site.bucket, "--distribution", site.distribution); err == nil || !strings.Contains(errOut, "not a directory") {
		t.Errorf("publish-static of a file: %v\n%s", err, errOut)
	}
	e.rollbackTo(h[0].Revision)
	if got := site.served(); got != first {
		t.Errorf("rollback --to the first revision serves %s", got)
	}

	out, errOut, err = e.run("status", "staging", "--output", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, errOut)
	}
	var st []struct {
		ECS []struct {
			Service, Status, Error string
			Site                   *struct{ Bucket, Distribution, Release string }
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 || len(st[0].ECS) != 2 {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if f := st[0].ECS[1]; f.Service != "frontend" || f.Error != "" || f.Site == nil || f.Site.Release != first || f.Site.Bucket != site.bucket || f.Site.Distribution != site.distribution {
		t.Errorf("status of frontend %+v", f)
	}
	if out, _, err := e.run("status", "staging"); err != nil || !strings.Contains(out, "static: s3://"+site.bucket+" through distribution "+site.distribution+", serving release "+first) {
		t.Errorf("status: %v\n%s", err, out)
	}
}

// TestECSStaticRefusesFilesLeavingTheSite attacks the publishing of a
// static service: a build that leaves a link to /etc/passwd (or a file
// named with "..") in static.dir fails the deploy before anything is
// uploaded or deployed, naming the service and the file.
func TestECSStaticRefusesFilesLeavingTheSite(t *testing.T) {
	e, site := newStaticECS(t)
	for _, c := range []struct{ extra, want string }{
		{"ln -s /etc/passwd dist/passwd", `"passwd" is a symbolic link to /etc/passwd, outside`},
		{"touch 'dist/assets/..%2f..%2fetc%2fpasswd'", `has ".." in its name`},
	} {
		build, err := os.ReadFile(filepath.Join(site.context, "build.sh"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(site.context, "build.sh"), append(build, []byte(c.extra+"\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut, err := e.run("deploy", "staging", "--image", "backend="+backendRef)
		if err == nil || !strings.Contains(errOut, "services.frontend.static") || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: deploy %v\n%s", c.extra, err, errOut)
		}
		if got := site.objects(); len(got) != 0 {
			t.Errorf("%s: the bucket holds %v", c.extra, got)
		}
		if h := e.history(); len(h) != 0 {
			t.Errorf("%s: a deployment was made: %+v", c.extra, h)
		}
	}
}

// revision is a revision of staging as history lists it.
func (e *ecsE2E) revision(id string) store.Revision {
	e.t.Helper()
	out, errOut, err := e.run("history", "staging", "--output", "json")
	if err != nil {
		e.t.Fatalf("history: %v\n%s", err, errOut)
	}
	var h struct{ Revisions []store.Revision }
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		e.t.Fatal(err)
	}
	for _, r := range h.Revisions {
		if r.ID == id {
			return r
		}
	}
	e.t.Fatalf("no revision %s in %s", id, out)
	return store.Revision{}
}

func (e *ecsE2E) rollbackTo(rev string) {
	e.t.Helper()
	if out, errOut, err := e.run("rollback", "staging", "--to", rev); err != nil {
		e.t.Fatalf("rollback --to %s: %v\n%s%s", rev, err, out, errOut)
	}
}

// TestECSStaticDeployFromExportedStack is the one path for a static
// service: `cutover export cloudformation`, the stacks created from its
// templates in moto, then `cutover deploy` with an ecs section that names
// only the region and the stack: the site's bucket and distribution come
// from the app stack's outputs. moto's CloudFormation does not create
// AWS::CloudFront::Distribution (it skips the resource and the outputs that
// refer to it), so the test creates the distribution the template
// describes through moto's CloudFront API, on a bucket name it fixes, and
// writes both (and a domain name for the distribution's other output) into
// the template before the stack is created; everything else is the
// exported template as is.
func TestECSStaticDeployFromExportedStack(t *testing.T) {
	e := newECSE2E(t, ecstypes.DeploymentControllerTypeEcs, "    strategy: { type: rolling }\n")
	ctx := context.Background()
	dir := filepath.Dir(e.file)
	const bucket = "shop-staging-frontend-site"
	site := newStaticSite(t, e.moto, dir, bucket)
	y := strings.Replace(staticYAML(e.moto, "{}"), "      cluster: shop\n", "      stack: shop-app-staging\n", 1)
	y = y[:strings.Index(y, "      execution_role_arn")] // the stack gives the rest
	y = strings.Replace(y, "  backend: { image: shop/backend:1, port: 3001, route: { path_prefix: /api } }", "  backend: { image: shop/backend:1, port: 3001, route: { path_prefix: /api }, desired_count: 0 }", 1)
	if err := os.WriteFile(e.file, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := e.run("export", "cloudformation", "--dir", filepath.Join(dir, "cf"), "--format", "json"); err != nil {
		t.Fatalf("export: %v\n%s%s", err, out, errOut)
	}
	patch := func(file string, body []byte) []byte {
		if file != "app-staging" {
			return body
		}
		var tpl map[string]any
		if err := json.Unmarshal(body, &tpl); err != nil {
			t.Fatal(err)
		}
		res, outs, params := tpl["Resources"].(map[string]any), tpl["Outputs"].(map[string]any), tpl["Parameters"].(map[string]any)
		if _, ok := res["FrontendDistribution"]; !ok {
			t.Fatalf("the app template has no FrontendDistribution: %v", res)
		}
		res["FrontendSiteBucket"].(map[string]any)["Properties"].(map[string]any)["BucketName"] = bucket
		outs["StagingFrontendDistributionId"].(map[string]any)["Value"] = site.distribution
		outs["StagingFrontendDistributionDomainName"].(map[string]any)["Value"] = "d111111abcdef8.cloudfront.net"
		params["FrontendDomainName"].(map[string]any)["Default"] = "www.shop.example.com"
		params["FrontendCertificateArn"].(map[string]any)["Default"] = "arn:aws:acm:us-east-1:123456789012:certificate/0"
		out, err := json.Marshal(tpl)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// newStaticSite made the bucket: the stack's bucket is the same one.
	if _, err := site.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	outputs := createExportedStacks(t, ctx, e.moto, filepath.Join(dir, "cf"), "staging", patch)
	if outputs["StagingFrontendSiteBucketName"] != bucket || outputs["StagingFrontendDistributionId"] != site.distribution {
		t.Fatalf("stack outputs %v", outputs)
	}

	out, errOut, err := e.run("deploy", "staging", "--image", "backend="+backendRef)
	if err != nil {
		t.Fatalf("deploy: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	d := site.served()
	if len(d) != 64 {
		t.Fatalf("origin path after the deploy: %q\n%s", d, errOut)
	}
	if got := site.objects(); got["releases/"+d+"/index.html"] != [2]string{"text/html; charset=utf-8", "no-cache"} {
		t.Errorf("bucket %v", got)
	}
	if inv := site.invalidations(); len(inv) != 1 {
		t.Errorf("invalidations %v", inv)
	}
	if h := e.history(); len(h) != 1 || h[0].Status != store.DeploymentSucceeded {
		t.Fatalf("history %+v", h)
	}
}

// TestECSStaticPrune: `cutover prune` on an ECS environment removes the
// site releases nothing needs: of three deployed releases, with --keep 2,
// the first goes (not served, not among the newest 2 revisions, not among
// the 2 newest uploads); a dry run lists it and removes nothing; the
// deploys' own retention removed nothing (all younger than an hour); a
// rollback to the pruned revision fails and changes nothing.
func TestECSStaticPrune(t *testing.T) {
	e, site := newStaticECS(t)
	var releases []string
	for _, v := range []string{"a1b2c3d4e5", "f6e5d4c3b2", "0a9b8c7d6e"} {
		site.version(v)
		if out, errOut, err := e.run("deploy", "staging", "--image", "backend="+backendRef); err != nil {
			t.Fatalf("deploy %s: %v\n%s%s", v, err, out, errOut)
		}
		releases = append(releases, site.served())
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 20*time.Millisecond))) // S3 times are to the second
	}
	if n := len(site.objects()); n != 3*4 {
		t.Fatalf("the deploys' retention removed releases younger than an hour: %d objects, want 12", n)
	}
	first := e.history()[2].Revision

	out, errOut, err := e.run("prune", "--keep", "2", "--min-age", "0s", "--dry-run")
	if err != nil || !strings.Contains(out, "would remove 1 releases from s3://"+site.bucket) || !strings.Contains(out, "release "+releases[0][:12]) || len(site.objects()) != 12 {
		t.Fatalf("prune --dry-run: %v\n%s%s\nbucket: %v", err, out, errOut, site.objects())
	}
	out, errOut, err = e.run("prune", "--keep", "2", "--min-age", "0s", "--output", "json")
	if err != nil {
		t.Fatalf("prune: %v\n%s%s", err, out, errOut)
	}
	var res struct {
		Sites []struct {
			Bucket  string
			Serving []string
			Removed []struct{ Digest string }
			Kept    int
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Sites) != 1 || len(res.Sites[0].Removed) != 1 || res.Sites[0].Removed[0].Digest != releases[0] ||
		res.Sites[0].Kept != 2 || !slices.Equal(res.Sites[0].Serving, releases[2:]) {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	for k := range site.objects() {
		if strings.Contains(k, releases[0]) {
			t.Errorf("%s of the pruned release is still in the bucket", k)
		}
	}
	before := site.objects()
	if out, errOut, err := e.run("rollback", "staging", "--to", first); err == nil || !strings.Contains(errOut, "not in the bucket") {
		t.Errorf("rollback to a pruned release: %v\n%s%s", err, out, errOut)
	}
	if got := site.served(); got != releases[2] || len(site.objects()) != len(before) {
		t.Errorf("the failed rollback changed the site: serving %s, bucket %v", got, site.objects())
	}
}

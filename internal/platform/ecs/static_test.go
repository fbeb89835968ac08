package ecs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
)

// writeSite writes files (path → content) under a new directory.
func writeSite(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startSite creates in moto a bucket and a distribution whose S3 origin
// reads it, as the exported app stack does, and returns the site and its
// clients, whose calls m.calls records.
func startSite(t *testing.T, m *moto) (Site, SiteClients) {
	t.Helper()
	ctx := context.Background()
	sc, err := NewSiteClients(ctx, ClientOptions{Region: "us-east-1", Endpoint: m.URL, MaxAttempts: 2, APIOptions: []func(*middleware.Stack) error{m.calls.middleware}})
	if err != nil {
		t.Fatal(err)
	}
	site := Site{Service: "frontend", Bucket: "shop-production-frontend"}
	if _, err := sc.S3.(*s3.Client).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &site.Bucket}); err != nil {
		t.Fatal(err)
	}
	site.Distribution = newDistribution(t, sc, site.Bucket, "test")
	m.calls.take()
	return site, sc
}

// newDistribution creates in moto a distribution whose S3 origin reads
// bucket, as the exported app stack does, and returns its ID.
func newDistribution(t *testing.T, sc SiteClients, bucket, ref string) string {
	t.Helper()
	dist, err := sc.CloudFront.(*cloudfront.Client).CreateDistribution(context.Background(), &cloudfront.CreateDistributionInput{DistributionConfig: &cftypes.DistributionConfig{
		CallerReference: aws.String(ref), Comment: aws.String("a site on " + bucket), Enabled: aws.Bool(true),
		DefaultRootObject: aws.String("index.html"),
		Origins: &cftypes.Origins{Quantity: aws.Int32(1), Items: []cftypes.Origin{{Id: aws.String("site"),
			DomainName: aws.String(bucket + ".s3.us-east-1.amazonaws.com"), S3OriginConfig: &cftypes.S3OriginConfig{OriginAccessIdentity: aws.String("")}}}},
		DefaultCacheBehavior: &cftypes.DefaultCacheBehavior{TargetOriginId: aws.String("site"), ViewerProtocolPolicy: cftypes.ViewerProtocolPolicyRedirectToHttps,
			CachePolicyId: aws.String("658327ea-f89d-4fab-a63d-7e88639e58f6")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(dist.Distribution.Id)
}

// objects lists the bucket's keys with their Content-Type and Cache-Control.
func objects(t *testing.T, sc SiteClients, bucket string) map[string][2]string {
	t.Helper()
	ctx := context.Background()
	c := sc.S3.(*s3.Client)
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]string{}
	for _, o := range list.Contents {
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		out[aws.ToString(o.Key)] = [2]string{aws.ToString(h.ContentType), aws.ToString(h.CacheControl)}
	}
	return out
}

func originPath(t *testing.T, sc SiteClients, site Site) string {
	t.Helper()
	cfg, err := sc.CloudFront.(*cloudfront.Client).GetDistributionConfig(context.Background(), &cloudfront.GetDistributionConfigInput{Id: &site.Distribution})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(cfg.DistributionConfig.Origins.Items[0].OriginPath)
}

func invalidations(t *testing.T, sc SiteClients, site Site) int {
	t.Helper()
	out, err := sc.CloudFront.(*cloudfront.Client).ListInvalidations(context.Background(), &cloudfront.ListInvalidationsInput{DistributionId: &site.Distribution})
	if err != nil {
		t.Fatal(err)
	}
	return int(aws.ToInt32(out.InvalidationList.Quantity))
}

// TestSitePublishAndRollBack publishes two releases of a site to moto's S3
// and CloudFront and goes back to the first: each release keeps its own
// prefix with per-file headers, the origin path moves, every move
// invalidates, and going back uploads nothing.
func TestSitePublishAndRollBack(t *testing.T) {
	m := startMoto(t)
	site, sc := startSite(t, m)
	ctx := context.Background()
	say := func(string, ...any) {}

	v1 := writeSite(t, map[string]string{
		"index.html":                "<!doctype html><title>v1</title>",
		"assets/index-BfQ2x9aZ.js":  "console.log(1)",
		"assets/style-8d7c6b5a.css": "body{}",
		"favicon.ico":               "\x00\x00\x01\x00",
		"robots.txt":                "User-agent: *",
		"data.bin":                  "\x00\x01\x02binary",
	})
	rel1, err := ScanSite(v1)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Upload(ctx, site, rel1, say); err != nil {
		t.Fatal(err)
	}
	if err := sc.Activate(ctx, site, rel1.Digest, say); err != nil {
		t.Fatal(err)
	}
	p := rel1.Prefix()
	want := map[string][2]string{
		p + "index.html":                    {"text/html; charset=utf-8", "no-cache"},
		p + "assets/index-BfQ2x9aZ.js":      {"text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		p + "assets/style-8d7c6b5a.css":     {"text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		p + "favicon.ico":                   {"image/vnd.microsoft.icon", "no-cache"},
		p + "robots.txt":                    {"text/plain; charset=utf-8", "no-cache"},
		p + "data.bin":                      {"application/octet-stream", "no-cache"},
		"releases/" + rel1.Digest + ".json": {"application/json", "no-store"},
	}
	got := objects(t, sc, site.Bucket)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: Content-Type, Cache-Control %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("bucket holds %d objects, want %d: %v", len(got), len(want), got)
	}
	if op := originPath(t, sc, site); op != "/releases/"+rel1.Digest {
		t.Errorf("origin path %q", op)
	}
	calls := m.calls.take()
	for _, op := range []string{"HeadObject", "PutObject", "GetDistributionConfig", "UpdateDistribution", "CreateInvalidation"} {
		if !slices.Contains(calls, op) {
			t.Errorf("no %s among %v", op, calls)
		}
	}
	if inv := m.calls.input("CreateInvalidation").(*cloudfront.CreateInvalidationInput); !slices.Equal(inv.InvalidationBatch.Paths.Items, []string{"/*"}) {
		t.Errorf("invalidated %v", inv.InvalidationBatch.Paths.Items)
	}

	// The second release: index.html and the bundle change.
	v2 := writeSite(t, map[string]string{"index.html": "<!doctype html><title>v2</title>", "assets/index-Xy12Zq9w.js": "console.log(2)"})
	rel2, err := ScanSite(v2)
	if err != nil {
		t.Fatal(err)
	}
	if rel2.Digest == rel1.Digest {
		t.Fatal("two different sites have one digest")
	}
	if err := sc.Upload(ctx, site, rel2, say); err != nil {
		t.Fatal(err)
	}
	if err := sc.Activate(ctx, site, rel2.Digest, say); err != nil {
		t.Fatal(err)
	}
	got = objects(t, sc, site.Bucket)
	if _, ok := got[p+"index.html"]; !ok || len(got) != len(want)+3 {
		t.Errorf("the first release's files must stay next to the second's: %v", got)
	}
	if op := originPath(t, sc, site); op != "/releases/"+rel2.Digest {
		t.Errorf("origin path %q after the second release", op)
	}
	m.calls.take()

	// Rolling back uploads no file: the first release is still there. Its
	// manifest is written again (a prune's MinAge keeps it from then).
	if err := sc.Upload(ctx, site, rel1, say); err != nil {
		t.Fatal(err)
	}
	if err := sc.Activate(ctx, site, rel1.Digest, say); err != nil {
		t.Fatal(err)
	}
	calls = m.calls.take()
	puts := slices.DeleteFunc(slices.Clone(calls), func(op string) bool { return op != "PutObject" })
	if len(puts) != 1 || aws.ToString(m.calls.input("PutObject").(*s3.PutObjectInput).Key) != manifestKey(rel1.Digest) || !slices.Contains(calls, "UpdateDistribution") {
		t.Errorf("rolling back called %v (want one PutObject, of the manifest, and one UpdateDistribution)", calls)
	}
	if op := originPath(t, sc, site); op != "/releases/"+rel1.Digest {
		t.Errorf("origin path %q after going back", op)
	}
	if n := invalidations(t, sc, site); n != 3 {
		t.Errorf("%d invalidations, want one per activation (3)", n)
	}
	if d, err := sc.Serving(ctx, site); err != nil || d != rel1.Digest {
		t.Errorf("serving %q, %v", d, err)
	}
	// Activating what is served already changes nothing.
	if err := sc.Activate(ctx, site, rel1.Digest, say); err != nil {
		t.Fatal(err)
	}
	if calls := m.calls.take(); slices.Contains(calls, "UpdateDistribution") || slices.Contains(calls, "CreateInvalidation") {
		t.Errorf("activating the served release again called %v", calls)
	}
}

// TestSiteActivateRefusesAnIncompleteRelease: a release whose manifest is
// not in the bucket (an upload that died, or a deleted prefix) is never
// served; the error names the service and the bucket.
func TestSiteActivateRefusesAnIncompleteRelease(t *testing.T) {
	m := startMoto(t)
	site, sc := startSite(t, m)
	d := strings.Repeat("ab", 32)
	err := sc.Activate(context.Background(), site, d, func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "static service frontend") || !strings.Contains(err.Error(), site.Bucket) || !strings.Contains(err.Error(), "not in the bucket") {
		t.Fatalf("activating a release that is not in the bucket: %v", err)
	}
	if op := originPath(t, sc, site); op != "" {
		t.Errorf("origin path changed to %q", op)
	}
	// A bucket that does not exist: the error names the service, the
	// bucket and the S3 call.
	missing := site
	missing.Bucket = "no-such-bucket"
	rel0, err := ScanSite(writeSite(t, map[string]string{"index.html": "x", "a.js": "y", "b.css": "z"}))
	if err != nil {
		t.Fatal(err)
	}
	err = sc.Upload(context.Background(), missing, rel0, func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "static service frontend (bucket no-such-bucket") || !strings.Contains(err.Error(), "s3:PutObject on s3://no-such-bucket/releases/") ||
		!strings.Contains(err.Error(), "NoSuchBucket") || !strings.Contains(err.Error(), "and 2 more files failed") {
		t.Errorf("upload to a missing bucket: %v", err)
	}
	wrong := site
	wrong.Bucket = "another-bucket"
	if _, err := sc.S3.(*s3.Client).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &wrong.Bucket}); err != nil {
		t.Fatal(err)
	}
	rel, err := ScanSite(writeSite(t, map[string]string{"index.html": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Upload(context.Background(), wrong, rel, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	if err := sc.Activate(context.Background(), wrong, rel.Digest, func(string, ...any) {}); err == nil || !strings.Contains(err.Error(), "no origin reading bucket another-bucket") {
		t.Fatalf("a distribution that does not read the bucket: %v", err)
	}
}

// TestScanSiteRefusesPathsLeavingTheDirectory attacks the scan: links out
// of the directory, names with "..", a backslash or a control character,
// a link to a directory and a FIFO are refused, with the offending name.
func TestScanSiteRefusesPathsLeavingTheDirectory(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		setup func(dir string) error
		want  string
	}{
		"link to /etc/passwd": {func(dir string) error { return os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")) }, `"passwd" is a symbolic link to /etc/passwd, outside`},
		"relative link out": {func(dir string) error {
			return os.Symlink("../../../../../../../../etc/passwd", filepath.Join(dir, "assets", "p.txt"))
		}, `"assets/p.txt" is a symbolic link to /etc/passwd`},
		"link to a file out":   {func(dir string) error { return os.Symlink(outside, filepath.Join(dir, "s.txt")) }, `"s.txt" is a symbolic link to ` + outside},
		"link to a directory":  {func(dir string) error { return os.Symlink(filepath.Join(dir, "assets"), filepath.Join(dir, "more")) }, `"more" is a symbolic link to`},
		"dotdot name":          {func(dir string) error { return os.WriteFile(filepath.Join(dir, "..%2f..%2fetc%2fpasswd"), nil, 0o644) }, `has ".." in its name`},
		"dotdot in a dir name": {func(dir string) error { return os.MkdirAll(filepath.Join(dir, "a..b"), 0o755) }, `"a..b" has ".." in its name`},
		"backslash":            {func(dir string) error { return os.WriteFile(filepath.Join(dir, `..\evil`), nil, 0o644) }, `has ".." in its name`},
		"backslash alone":      {func(dir string) error { return os.WriteFile(filepath.Join(dir, `a\b`), nil, 0o644) }, "backslash"},
		"newline":              {func(dir string) error { return os.WriteFile(filepath.Join(dir, "a\nb"), nil, 0o644) }, "control character"},
		"fifo":                 {func(dir string) error { return syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644) }, `"pipe" is not a regular file`},
		"no index.html":        {func(dir string) error { return os.Remove(filepath.Join(dir, "index.html")) }, "no index.html"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := writeSite(t, map[string]string{"index.html": "x", "assets/app.js": "y"})
			if err := c.setup(dir); err != nil {
				t.Fatal(err)
			}
			_, err := ScanSite(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("scan: %v, want an error with %q", err, c.want)
			}
		})
	}
	// A link to a file inside the directory is published as that file.
	dir := writeSite(t, map[string]string{"index.html": "x", "assets/app.js": "y"})
	if err := os.Symlink(filepath.Join(dir, "index.html"), filepath.Join(dir, "200.html")); err != nil {
		t.Fatal(err)
	}
	rel, err := ScanSite(dir)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range rel.Files {
		keys = append(keys, f.Key)
	}
	if !slices.Equal(keys, []string{"200.html", "assets/app.js", "index.html"}) {
		t.Errorf("keys %v", keys)
	}
}

// TestUploadRefusesAFileChangedSinceTheScan: the file published is the one
// hashed; swapping it for a link to /etc/passwd after the scan fails the
// upload and puts nothing in the bucket.
func TestUploadRefusesAFileChangedSinceTheScan(t *testing.T) {
	m := startMoto(t)
	site, sc := startSite(t, m)
	dir := writeSite(t, map[string]string{"index.html": "x"})
	rel, err := ScanSite(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "index.html")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", p); err != nil {
		t.Fatal(err)
	}
	err = sc.Upload(context.Background(), site, rel, func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "index.html changed while it was being published") {
		t.Fatalf("upload after a swap: %v", err)
	}
	if got := objects(t, sc, site.Bucket); len(got) != 0 {
		t.Errorf("the bucket holds %v", got)
	}
}

// Attack: a site's large file (a video, a build's stray archive) was read
// whole into memory by the scan and again by each of the 8 concurrent
// uploads: a 4 GB file took 4 GB, twice. The scan and the upload stream
// it: publishing a 64 MiB file allocates a small part of it.
func TestSiteFilesAreStreamedNotHeld(t *testing.T) {
	m := startMoto(t)
	site, sc := startSite(t, m)
	dir := writeSite(t, map[string]string{"index.html": "<h1>shop</h1>"})
	const size = 64 << 20
	big, err := os.Create(filepath.Join(dir, "video.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	for range size / len(chunk) {
		if _, err := big.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := big.Close(); err != nil {
		t.Fatal(err)
	}
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	var rel SiteRelease
	if n := allocated(func() { rel, err = ScanSite(dir) }); err != nil || n > size/8 {
		t.Fatalf("scanning a %d-byte file allocated %d bytes (%v)", size, n, err)
	}
	if n := allocated(func() { err = sc.Upload(context.Background(), site, rel, func(string, ...any) {}) }); err != nil || n > size/4 {
		t.Fatalf("uploading a %d-byte file allocated %d bytes (%v)", size, n, err)
	}
	h, err := sc.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &site.Bucket, Key: aws.String(rel.Prefix() + "video.mp4")})
	if err != nil || aws.ToInt64(h.ContentLength) != size || aws.ToString(h.ContentType) != "video/mp4" {
		t.Fatalf("video.mp4 in the bucket: %v %v", h, err)
	}
}

// goroutineS3 is an S3 that records how many goroutines run while it is
// called. A fake: what is measured is cutover's own concurrency, which
// moto's S3 cannot observe.
type goroutineS3 struct {
	S3API // the calls Upload does not make: nil
	mu    sync.Mutex
	most  int
	puts  int
}

func (g *goroutineS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.most = max(g.most, runtime.NumGoroutine())
	g.puts++
	_, err := io.Copy(io.Discard, in.Body)
	return &s3.PutObjectOutput{}, err
}

func (g *goroutineS3) HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	return nil, &s3types.NotFound{}
}

// Attack: Upload started a goroutine per file, each waiting its turn: a
// build output of many files held that many goroutines at once. A fixed
// set of uploaders takes the files one after the other.
func TestUploadRunsAFixedSetOfUploaders(t *testing.T) {
	files := map[string]string{"index.html": "x"}
	for i := range 2000 {
		files[fmt.Sprintf("assets/%04d.txt", i)] = fmt.Sprint(i)
	}
	rel, err := ScanSite(writeSite(t, files))
	if err != nil {
		t.Fatal(err)
	}
	fake := &goroutineS3{}
	before := runtime.NumGoroutine()
	if err := (SiteClients{S3: fake}).Upload(context.Background(), Site{Service: "frontend", Bucket: "b"}, rel, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	if fake.puts != 2002 || fake.most > before+uploaders+4 {
		t.Errorf("%d puts (want 2001 files and the manifest), at most %d goroutines during them (%d before)", fake.puts, fake.most, before)
	}
}

// Attack: static.dir "." (a site with no build step, the repository's
// root) published the repository's .git (its remote's credentials, every
// past version of the code) and its .env to the world. The scan refuses
// them, naming the file; .well-known and other dot files stay publishable.
func TestScanSiteRefusesRepositoryAndEnvironmentFiles(t *testing.T) {
	for _, name := range []string{".git/config", ".git", ".hg/hgrc", ".svn/entries", ".env", ".env.production", "docs/.git/HEAD"} {
		t.Run(name, func(t *testing.T) {
			dir := writeSite(t, map[string]string{"index.html": "x", name: "url = https://user:ghp_token@github.com/shop/site"})
			_, err := ScanSite(dir)
			if err == nil || !strings.Contains(err.Error(), "never part of a site: refusing to publish it") {
				t.Errorf("scan with %s: %v", name, err)
			}
		})
	}
	rel, err := ScanSite(writeSite(t, map[string]string{"index.html": "x", ".well-known/security.txt": "Contact: x", ".nojekyll": "", "environment.js": "x"}))
	if err != nil || len(rel.Files) != 4 {
		t.Errorf("scan of ordinary dot files: %v %v", rel.Files, err)
	}
}

// A file larger than S3 takes in one PutObject is refused by the scan,
// from its size, before anything is read or uploaded (a sparse file: no
// disk is used).
func TestScanSiteRefusesAFileS3CannotTake(t *testing.T) {
	dir := writeSite(t, map[string]string{"index.html": "x"})
	if err := os.Truncate(filepath.Join(dir, "index.html"), MaxSiteFile+1); err != nil {
		t.Fatal(err)
	}
	_, err := ScanSite(dir)
	if err == nil || !strings.Contains(err.Error(), `"index.html" is 5368709121 bytes, more than S3 takes in one upload (5 GiB)`) {
		t.Fatalf("scan of a 5 GiB + 1 file: %v", err)
	}
}

// Attack: a file rewritten with other content of the same size after the
// scan is caught by its hash as the upload reads it (the size check cannot
// see it), and its release is not completed.
func TestUploadRefusesSameSizeContentChangedSinceTheScan(t *testing.T) {
	m := startMoto(t)
	site, sc := startSite(t, m)
	dir := writeSite(t, map[string]string{"index.html": "<h1>good</h1>"})
	rel, err := ScanSite(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>evil</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = sc.Upload(context.Background(), site, rel, func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "index.html changed while it was being published") {
		t.Fatalf("upload after a same-size change: %v", err)
	}
	for key := range objects(t, sc, site.Bucket) {
		if strings.HasSuffix(key, ".json") {
			t.Errorf("the release's manifest %s was written: it would be activated", key)
		}
	}
}

func TestCacheControl(t *testing.T) {
	for key, want := range map[string]string{
		"index.html": "no-cache", "about/index.html": "no-cache", "assets/index-BfQ2x9aZ.js": "public, max-age=31536000, immutable",
		"static/js/main.3f2a1b4c.chunk.js": "public, max-age=31536000, immutable", "my-application.js": "no-cache",
		"service-worker.js": "no-cache", "favicon.ico": "no-cache", "page-12345678.html": "no-cache",
		// Attack: a date or a counter in a name is not a content hash: a
		// report replaced under its name must not be cached for a year.
		"reports/sales-20240101.pdf": "no-cache", "feed-00000042.xml": "no-cache", "docs/v2.20240101.json": "no-cache",
		"assets/logo.a1b2c3d4.svg": "public, max-age=31536000, immutable",
	} {
		if got := CacheControl(key); got != want {
			t.Errorf("%s: %q, want %q", key, got, want)
		}
	}
}

package ecs

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// publish uploads release i of a site (files of its own).
func publish(t *testing.T, sc SiteClients, site Site, i int) SiteRelease {
	t.Helper()
	rel, err := ScanSite(writeSite(t, map[string]string{"index.html": fmt.Sprintf("<title>v%d</title>", i), "assets/app.js": strings.Repeat("x", i+1)}))
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Upload(context.Background(), site, rel, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	return rel
}

// nextSecond waits for the next second of the clock: S3 (and moto) give
// an object's time to the second.
func nextSecond() {
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 20*time.Millisecond)))
}

// releasesIn lists the digests with a manifest, and those with files, in
// the bucket.
func releasesIn(t *testing.T, sc SiteClients, bucket string) (manifests, files []string) {
	t.Helper()
	m, f := map[string]bool{}, map[string]bool{}
	for k := range objects(t, sc, bucket) {
		rest, ok := strings.CutPrefix(k, "releases/")
		if !ok {
			continue
		}
		if d, ok := strings.CutSuffix(rest, ".json"); ok {
			m[d] = true
		} else if d, _, ok := strings.Cut(rest, "/"); ok {
			f[d] = true
		}
	}
	return slices.Sorted(maps.Keys(m)), slices.Sorted(maps.Keys(f))
}

// TestSitePruneKeepsWhatIsServedNeededNewestAndYoung: of five releases
// and a failed upload, a prune keeping 2 removes exactly those neither
// served, nor named by a record, nor among the 2 newest (to the second: S3
// gives no finer time); a dry run and a MinAge that covers them all remove
// nothing; what is not a release is left alone; a pruned release is
// refused by Activate and uploaded whole again by Upload.
func TestSitePruneKeepsWhatIsServedNeededNewestAndYoung(t *testing.T) {
	m := startMoto(t)
	site, sc := startSite(t, m)
	ctx := context.Background()
	// v0 (needed), v1 (removed), v2 (served) in one second, then v3 in the
	// next, v4 and v5 in the one after: with Keep 2, v4 and v5 are the
	// newest, v3 goes; with Keep 3, v3 is; with Keep 1, v4 and v5 both.
	var rels []SiteRelease
	for i := range 6 {
		if i == 3 || i == 4 {
			nextSecond()
		}
		rels = append(rels, publish(t, sc, site, i))
	}
	if err := sc.Activate(ctx, site, rels[2].Digest, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	failed := strings.Repeat("0f", 32)
	for _, k := range []string{"releases/" + failed + "/index.html", "releases/README.txt", "index.html", "releases/not-a-digest/x"} {
		if _, err := sc.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &site.Bucket, Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	needed := func(d string) bool { return d == rels[0].Digest }
	o := SitePruneOptions{Serving: []Site{site}, Keep: 2, Needed: needed}

	before := objects(t, sc, site.Bucket)
	for _, dry := range []SitePruneOptions{{Serving: o.Serving, Keep: 2, Needed: needed, DryRun: true}, {Serving: o.Serving, Keep: 2, Needed: needed, MinAge: time.Hour}} {
		res, err := sc.PruneReleases(ctx, site.Bucket, dry)
		if err != nil {
			t.Fatal(err)
		}
		if got := objects(t, sc, site.Bucket); len(got) != len(before) {
			t.Fatalf("%+v removed objects: %d before, %d after", dry, len(before), len(got))
		}
		if dry.DryRun && len(res.Removed) != 3 || !dry.DryRun && len(res.Removed) != 0 {
			t.Errorf("%+v: removed %+v", dry, res.Removed)
		}
	}

	res, err := sc.PruneReleases(ctx, site.Bucket, o)
	if err != nil {
		t.Fatal(err)
	}
	var removed []string
	for _, r := range res.Removed {
		removed = append(removed, r.Digest)
		if r.Digest == failed && (r.Complete || r.Objects != 1) || r.Digest != failed && (!r.Complete || r.Objects != 3) {
			t.Errorf("removed release %+v", r)
		}
	}
	want := []string{rels[1].Digest, rels[3].Digest, failed}
	slices.Sort(want)
	slices.Sort(removed)
	if !slices.Equal(removed, want) || res.Kept != 4 || !slices.Equal(res.Serving, []string{rels[2].Digest}) || res.FreedBytes <= 0 {
		t.Fatalf("removed %v, kept %d, serving %v, freed %d; want removed %v (not v0: needed, v2: served, v4, v5: newest), kept 4", removed, res.Kept, res.Serving, res.FreedBytes, want)
	}
	manifests, files := releasesIn(t, sc, site.Bucket)
	keep := []string{rels[0].Digest, rels[2].Digest, rels[4].Digest, rels[5].Digest}
	slices.Sort(keep)
	if !slices.Equal(manifests, keep) || !slices.Equal(slices.DeleteFunc(files, func(d string) bool { return d == "not-a-digest" }), keep) {
		t.Errorf("after the prune: manifests %v, files %v; want %v", manifests, files, keep)
	}
	got := objects(t, sc, site.Bucket)
	for _, k := range []string{"releases/README.txt", "index.html", "releases/not-a-digest/x"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s, not a release's, was removed", k)
		}
	}

	// A pruned release cannot be switched to; uploaded again, it is whole.
	if err := sc.Activate(ctx, site, rels[3].Digest, func(string, ...any) {}); err == nil || !strings.Contains(err.Error(), "not in the bucket") {
		t.Fatalf("activating a pruned release: %v", err)
	}
	nextSecond()
	if err := sc.Upload(ctx, site, rels[3], func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	if err := sc.Activate(ctx, site, rels[3].Digest, func(string, ...any) {}); err != nil {
		t.Fatalf("activating a pruned release uploaded again: %v", err)
	}
	if got := objects(t, sc, site.Bucket); len(got) != len(before)-3*2-1+3 {
		t.Errorf("%d objects after uploading v3 again, want %d", len(got), len(before)-3*2-1+3)
	}
	// Keep 1: v3 is now the newest and served; v2, v4 and v5 go.
	res, err = sc.PruneReleases(ctx, site.Bucket, SitePruneOptions{Serving: o.Serving, Keep: 1, Needed: needed})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 3 {
		t.Errorf("Keep 1 removed %+v, want v2, v4 and v5", res.Removed)
	}
}

// Attack: a release whose files a prune (or a lifecycle rule) deleted but
// whose manifest is still there was taken as published: Upload skipped it
// and Activate served a site without files. Upload now puts back what is
// missing, and writes the manifest again.
func TestUploadRestoresTheFilesOfAReleaseWithAManifest(t *testing.T) {
	m := startMoto(t)
	site, sc := startSite(t, m)
	ctx := context.Background()
	rel := publish(t, sc, site, 0)
	before := objects(t, sc, site.Bucket)
	key := rel.Prefix() + "assets/app.js"
	if _, err := sc.S3.(*s3.Client).DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &site.Bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
	m.calls.take()
	var said []string
	if err := sc.Upload(ctx, site, rel, func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }); err != nil {
		t.Fatal(err)
	}
	if got := objects(t, sc, site.Bucket); len(got) != len(before) {
		t.Fatalf("after the upload: %v, want %v", got, before)
	}
	if calls := m.calls.take(); len(slices.DeleteFunc(calls, func(op string) bool { return op != "PutObject" })) != 2 {
		t.Errorf("PutObject calls %v: want the missing file and the manifest", calls)
	}
	if len(said) != 1 || !strings.Contains(said[0], "1 of its files are not") {
		t.Errorf("said %q", said)
	}
}

// Attack: a rollback switches the distribution to a release while a prune
// removes it (the rollback read its manifest just before the prune
// deleted it). The prune reads the distributions again between the
// manifest and the files: the release gets its manifest back and stays.
func TestSitePruneLeavesAReleaseSwitchedToMeanwhile(t *testing.T) {
	m := startMoto(t)
	site, sc := startSite(t, m)
	ctx := context.Background()
	rels := []SiteRelease{publish(t, sc, site, 0), publish(t, sc, site, 1)}
	nextSecond()
	rels = append(rels, publish(t, sc, site, 2))
	if err := sc.Activate(ctx, site, rels[2].Digest, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	before := objects(t, sc, site.Bucket)
	racing := sc
	racing.S3 = &switchOnDelete{S3API: sc.S3, onDelete: func(keys []string) {
		if slices.Contains(keys, manifestKey(rels[0].Digest)) {
			// What a rollback that checked the manifest a moment ago does now.
			if _, _, err := sc.setOrigin(ctx, site, OriginPath(rels[0].Digest)); err != nil {
				t.Error(err)
			}
		}
	}}
	res, err := racing.PruneReleases(ctx, site.Bucket, SitePruneOptions{Serving: []Site{site}, Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0].Digest != rels[1].Digest || res.Kept != 2 {
		t.Fatalf("removed %+v, kept %d: want v1 removed, v0 (switched to meanwhile) and v2 kept", res.Removed, res.Kept)
	}
	if got := objects(t, sc, site.Bucket); len(got) != len(before)-3 {
		t.Errorf("%d objects after the prune, want %d (v0 whole)", len(got), len(before)-3)
	}
	if err := sc.Activate(ctx, site, rels[0].Digest, func(string, ...any) {}); err != nil {
		t.Errorf("v0, served, is not whole: %v", err)
	}
}

// TestSitePruneRemovesNothingWhenTheServedReleaseIsUnknown: a distribution
// that cannot be read (a wrong ID, no permission) stops the prune before it
// removes anything.
func TestSitePruneRemovesNothingWhenTheServedReleaseIsUnknown(t *testing.T) {
	m := startMoto(t)
	site, sc := startSite(t, m)
	publish(t, sc, site, 0)
	publish(t, sc, site, 1)
	before := objects(t, sc, site.Bucket)
	wrong := site
	wrong.Distribution = "E000000000000"
	_, err := sc.PruneReleases(context.Background(), site.Bucket, SitePruneOptions{Serving: []Site{wrong}, Keep: 1})
	if err == nil || !strings.Contains(err.Error(), "cannot tell which release") || !strings.Contains(err.Error(), "nothing was removed") {
		t.Fatalf("prune with an unreadable distribution: %v", err)
	}
	if got := objects(t, sc, site.Bucket); len(got) != len(before) {
		t.Errorf("objects removed: %d before, %d after", len(before), len(got))
	}
}

// switchOnDelete is moto's S3 with a hook run after each DeleteObjects.
type switchOnDelete struct {
	S3API
	onDelete func(keys []string)
}

func (s *switchOnDelete) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, o ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	out, err := s.S3API.DeleteObjects(ctx, in, o...)
	var keys []string
	for _, id := range in.Delete.Objects {
		keys = append(keys, aws.ToString(id.Key))
	}
	s.onDelete(keys)
	return out, err
}

type pruneInActivate struct {
	CloudFrontAPI
	once sync.Once
	hook func()
}

func (p *pruneInActivate) GetDistributionConfig(ctx context.Context, in *cloudfront.GetDistributionConfigInput, o ...func(*cloudfront.Options)) (*cloudfront.GetDistributionConfigOutput, error) {
	p.once.Do(p.hook)
	return p.CloudFrontAPI.GetDistributionConfig(ctx, in, o...)
}

// Attack (found by a review): a prune between Activate's check of the
// release and its switch deleted the release, and the distribution was
// pointed at nothing. Activate now looks again after the switch, and
// points the distribution back.
func TestSitePruneDuringActivateLeavesTheOldReleaseServed(t *testing.T) {
	m := startMoto(t)
	site, sc := startSite(t, m)
	ctx := context.Background()
	old := publish(t, sc, site, 0)
	nextSecond()
	cur := publish(t, sc, site, 1)
	if err := sc.Activate(ctx, site, cur.Digest, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	rollback := sc
	rollback.CloudFront = &pruneInActivate{CloudFrontAPI: sc.CloudFront, hook: func() {
		if _, err := sc.PruneReleases(ctx, site.Bucket, SitePruneOptions{Serving: []Site{site}, Keep: 1}); err != nil {
			t.Error(err)
		}
	}}
	err := rollback.Activate(ctx, site, old.Digest, func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "went from the bucket") {
		t.Fatalf("a rollback to a release pruned during it: %v", err)
	}
	if served, err := sc.Serving(ctx, site); err != nil || served != cur.Digest {
		t.Fatalf("the distribution serves %q (%v), want %s again", served, err, short(cur.Digest))
	}
}

type listThenHook struct {
	S3API
	once sync.Once
	hook func()
}

func (l *listThenHook) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	out, err := l.S3API.ListObjectsV2(ctx, in, o...)
	l.once.Do(l.hook)
	return out, err
}

// Attack (found by a review): a failed upload's files, doomed by a prune's
// listing, were uploaded again (and its manifest written) before the prune
// deleted them: a manifest without files, which Activate took. Activate
// now checks every file the manifest lists.
func TestActivateRefusesAManifestWithoutItsFiles(t *testing.T) {
	m := startMoto(t)
	site, sc := startSite(t, m)
	ctx := context.Background()
	cur := publish(t, sc, site, 1)
	if err := sc.Activate(ctx, site, cur.Digest, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	rel, err := ScanSite(writeSite(t, map[string]string{"index.html": "<title>v2</title>", "assets/app.js": "yy"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rel.Files { // the failed upload: files, no manifest
		if err := sc.put(ctx, site, rel.Prefix(), f); err != nil {
			t.Fatal(err)
		}
	}
	racing := sc
	racing.S3 = &listThenHook{S3API: sc.S3, hook: func() {
		if err := sc.Upload(ctx, site, rel, func(string, ...any) {}); err != nil { // the retry
			t.Error(err)
		}
	}}
	if _, err := racing.PruneReleases(ctx, site.Bucket, SitePruneOptions{Serving: []Site{site}, Keep: 1}); err != nil {
		t.Fatal(err)
	}
	err = sc.Activate(ctx, site, rel.Digest, func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "not whole in the bucket") {
		t.Fatalf("activating a release whose manifest is there without its files: %v", err)
	}
	if served, _ := sc.Serving(ctx, site); served != cur.Digest {
		t.Fatalf("the distribution serves %s, want %s", short(served), short(cur.Digest))
	}
	// Deployed again, the release is whole and served.
	if err := sc.Upload(ctx, site, rel, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	if err := sc.Activate(ctx, site, rel.Digest, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
}

// Attack (found by a review): a second distribution reads the bucket (of
// another project, or an environment no longer in cutover.yaml); only the
// configured one counted as serving, and the prune deleted the release the
// other serves. Every distribution reading the bucket counts now.
func TestSitePruneKeepsWhatAnUnconfiguredDistributionServes(t *testing.T) {
	m := startMoto(t)
	site, sc := startSite(t, m)
	ctx := context.Background()
	other := Site{Service: "other", Bucket: site.Bucket, Distribution: newDistribution(t, sc, site.Bucket, "other")}
	otherRel := publish(t, sc, other, 0)
	if err := sc.Activate(ctx, other, otherRel.Digest, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	nextSecond()
	var last SiteRelease
	for i := 1; i <= 3; i++ {
		last = publish(t, sc, site, i)
	}
	if err := sc.Activate(ctx, site, last.Digest, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	res, err := sc.PruneReleases(ctx, site.Bucket, SitePruneOptions{Serving: []Site{site}, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Serving, otherRel.Digest) || len(res.Removed) != 0 {
		t.Errorf("serving %v, removed %+v: want the other distribution's release served and kept", res.Serving, res.Removed)
	}
	if err := sc.whole(ctx, other, otherRel.Digest); err != nil {
		t.Fatalf("distribution %s reads the bucket and serves release %s, which the prune took: %v", other.Distribution, short(otherRel.Digest), err)
	}
}

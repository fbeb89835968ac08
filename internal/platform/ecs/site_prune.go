package ecs

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// SitePruneOptions say which releases of a bucket PruneReleases keeps.
type SitePruneOptions struct {
	// Serving are the distributions that read the bucket: the release each
	// serves is kept (a bucket may serve more than one environment).
	Serving []Site
	// Keep: the newest Keep complete releases (by their manifest's time,
	// to the second: those of the same second as the Keep-th are kept too)
	// are kept, whatever records say.
	Keep int
	// MinAge keeps a release with an object younger than this: an upload
	// in progress has no manifest yet, and a release published a moment
	// ago may be switched to next.
	MinAge time.Duration
	// Needed says whether a record (a revision kept, a deployment in
	// progress) names the release with this digest.
	Needed func(digest string) bool
	DryRun bool
}

// PrunedRelease is a release PruneReleases removed (or, dry, would remove).
type PrunedRelease struct {
	Digest   string    `json:"digest"`
	Objects  int       `json:"objects"`
	Bytes    int64     `json:"bytes"`
	Complete bool      `json:"complete"` // it had a manifest; an incomplete one is an upload that failed
	Modified time.Time `json:"modified"` // its newest object
}

// SitePruneResult is what PruneReleases did to one bucket.
type SitePruneResult struct {
	Bucket     string          `json:"bucket"`
	Serving    []string        `json:"serving"` // the releases the distributions serve
	Removed    []PrunedRelease `json:"removed"`
	Kept       int             `json:"kept"`
	FreedBytes int64           `json:"freed_bytes"`
}

// siteRelease is what a bucket holds of one release.
type siteRelease struct {
	PrunedRelease
	manifest time.Time // zero without one
	keys     []string  // its files, then its manifest
}

// PruneReleases removes from bucket the releases nothing needs: it keeps
// those the distributions of o.Serving serve, the newest o.Keep complete
// ones, those o.Needed names and those with an object younger than
// o.MinAge. It refuses to remove anything when it cannot tell what a
// distribution serves. A release goes manifest first: from then on
// Activate refuses it and Upload uploads it again, so a rollback racing
// the prune fails instead of serving half a release; just before its files
// go, the distributions are read again, and a release one of them was
// switched to meanwhile gets its manifest back and stays.
func (c SiteClients) PruneReleases(ctx context.Context, bucket string, o SitePruneOptions) (SitePruneResult, error) {
	res := SitePruneResult{Bucket: bucket, Serving: []string{}, Removed: []PrunedRelease{}}
	if o.Keep < 1 {
		return res, fmt.Errorf("pruning s3://%s: keep %d releases: must be at least 1", bucket, o.Keep)
	}
	serving, err := c.servingAll(ctx, o.Serving)
	if err != nil {
		return res, fmt.Errorf("pruning s3://%s: %w (nothing was removed)", bucket, err)
	}
	res.Serving = slices.Sorted(maps.Keys(serving))
	rels, err := c.listReleases(ctx, bucket)
	if err != nil {
		return res, err
	}
	complete := slices.DeleteFunc(slices.Collect(maps.Values(rels)), func(r *siteRelease) bool { return r.manifest.IsZero() })
	slices.SortFunc(complete, func(a, b *siteRelease) int {
		return cmp.Or(b.manifest.Compare(a.manifest), strings.Compare(a.Digest, b.Digest))
	})
	// S3 gives an object's time to the second: releases published within
	// the second of the Keep-th newest are all kept.
	newest := map[string]bool{}
	for i, r := range complete {
		if i >= o.Keep && r.manifest.Before(complete[o.Keep-1].manifest) {
			break
		}
		newest[r.Digest] = true
	}
	now := time.Now()
	var doomed []*siteRelease
	for _, d := range slices.Sorted(maps.Keys(rels)) {
		r := rels[d]
		if serving[d] || newest[d] || now.Sub(r.Modified) < o.MinAge || (o.Needed != nil && o.Needed(d)) {
			res.Kept++
			continue
		}
		doomed = append(doomed, r)
	}
	for _, r := range doomed {
		if !o.DryRun {
			kept, err := c.removeRelease(ctx, bucket, r, o.Serving)
			if err != nil {
				return res, err
			}
			if kept {
				res.Kept++
				continue
			}
		}
		res.Removed = append(res.Removed, r.PrunedRelease)
		res.FreedBytes += r.Bytes
	}
	return res, nil
}

// servingAll is the set of releases the sites' distributions serve, and
// any other distribution of the account reading their bucket serves (one
// of another project, of an environment no longer in cutover.yaml, a www
// name beside the apex).
func (c SiteClients) servingAll(ctx context.Context, sites []Site) (map[string]bool, error) {
	out := map[string]bool{}
	buckets := map[string]bool{}
	for _, s := range sites {
		buckets[s.Bucket] = true
	}
	p := cloudfront.NewListDistributionsPaginator(c.CloudFront, &cloudfront.ListDistributionsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot tell which distributions read the bucket: %w", siteErr(err, "the account's distributions"))
		}
		if page.DistributionList == nil {
			continue
		}
		for _, dist := range page.DistributionList.Items {
			origins := dist.Origins
			if origins == nil {
				// The API reference makes Origins part of every summary;
				// moto's leaves them out: read the distribution's config.
				cfg, err := c.CloudFront.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: dist.Id})
				if err != nil {
					return nil, fmt.Errorf("cannot tell which release distribution %s serves: %w", aws.ToString(dist.Id), siteErr(err, "distribution "+aws.ToString(dist.Id)))
				}
				if origins = cfg.DistributionConfig.Origins; origins == nil {
					continue
				}
			}
			for _, o := range origins.Items {
				b, _, ok := strings.Cut(aws.ToString(o.DomainName), ".s3.")
				if d := releaseOf(o.OriginPath); ok && buckets[b] && d != "" {
					out[d] = true
				}
			}
		}
	}
	for _, s := range sites {
		d, err := c.Serving(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("cannot tell which release %s serves: %w", s, err)
		}
		if d != "" {
			out[d] = true
		}
	}
	return out, nil
}

// listReleases reads what the bucket holds under releases/, by digest.
// Keys there that are not a release's are left out (and alone).
func (c SiteClients) listReleases(ctx context.Context, bucket string) (map[string]*siteRelease, error) {
	rels := map[string]*siteRelease{}
	get := func(d string) *siteRelease {
		r := rels[d]
		if r == nil {
			r = &siteRelease{PrunedRelease: PrunedRelease{Digest: d}}
			rels[d] = r
		}
		return r
	}
	p := s3.NewListObjectsV2Paginator(c.S3, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("releases/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("pruning s3://%s: %w", bucket, siteErr(err, "s3://"+bucket+"/releases/"))
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			rest := strings.TrimPrefix(key, "releases/")
			var r *siteRelease
			if d, ok := strings.CutSuffix(rest, ".json"); ok && digestRe.MatchString(d) {
				r = get(d)
				r.manifest = aws.ToTime(obj.LastModified)
				r.Complete = true
			} else if d, _, ok := strings.Cut(rest, "/"); ok && digestRe.MatchString(d) {
				r = get(d)
			} else {
				continue
			}
			r.Objects++
			r.Bytes += aws.ToInt64(obj.Size)
			if t := aws.ToTime(obj.LastModified); t.After(r.Modified) {
				r.Modified = t
			}
			r.keys = append(r.keys, key)
		}
	}
	for _, r := range rels {
		// The manifest goes first (see PruneReleases).
		m := manifestKey(r.Digest)
		r.keys = slices.DeleteFunc(r.keys, func(k string) bool { return k == m })
		if r.Complete {
			r.keys = append([]string{m}, r.keys...)
		}
	}
	return rels, nil
}

// maxManifest bounds the manifest read back into memory while its release
// is removed (a million files' manifest is ~250 MB: such a release is left
// for a lifecycle rule).
const maxManifest = 256 << 20

// removeRelease deletes r's objects, its manifest first. If a distribution
// serves r once its manifest is gone (a rollback switched to it after the
// listing), the manifest is put back and r stays: kept is true.
func (c SiteClients) removeRelease(ctx context.Context, bucket string, r *siteRelease, sites []Site) (kept bool, err error) {
	keys := r.keys
	var manifest []byte
	if r.Complete {
		out, err := c.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(keys[0])})
		if err != nil {
			return false, fmt.Errorf("pruning release %s of s3://%s: %w", short(r.Digest), bucket, siteErr(err, "s3://"+bucket+"/"+keys[0]))
		}
		manifest, err = io.ReadAll(io.LimitReader(out.Body, maxManifest+1))
		out.Body.Close()
		if err == nil && len(manifest) > maxManifest {
			err = fmt.Errorf("over %d bytes", maxManifest)
		}
		if err != nil {
			return false, fmt.Errorf("pruning release %s of s3://%s: reading its manifest: %w", short(r.Digest), bucket, err)
		}
		if err := c.deleteKeys(ctx, bucket, keys[:1]); err != nil {
			return false, err
		}
		keys = keys[1:]
		serving, err := c.servingAll(ctx, sites)
		if err == nil && !serving[r.Digest] {
			return false, c.deleteKeys(ctx, bucket, keys)
		}
		// Served now, or unknown: the release stays whole.
		if _, perr := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(manifestKey(r.Digest)), Body: strings.NewReader(string(manifest)),
			ContentType: aws.String("application/json"), CacheControl: aws.String("no-store")}); perr != nil {
			return false, fmt.Errorf("pruning release %s of s3://%s: a distribution may serve it now, and its manifest could not be put back (deploy it again to restore it): %w", short(r.Digest), bucket, siteErr(perr, "s3://"+bucket+"/"+manifestKey(r.Digest)))
		}
		if err != nil {
			return true, fmt.Errorf("pruning release %s of s3://%s: %w (it was left whole)", short(r.Digest), bucket, err)
		}
		return true, nil
	}
	return false, c.deleteKeys(ctx, bucket, keys)
}

// deleteKeys deletes keys, 1000 a request (S3's most).
func (c SiteClients) deleteKeys(ctx context.Context, bucket string, keys []string) error {
	for chunk := range slices.Chunk(keys, 1000) {
		ids := make([]s3types.ObjectIdentifier, len(chunk))
		for i, k := range chunk {
			ids[i] = s3types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := c.S3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &bucket, Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return fmt.Errorf("pruning s3://%s: %w", bucket, siteErr(err, "s3://"+bucket+"/"+chunk[0]))
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("pruning s3://%s: deleting %s: %s: %s (and %d more keys failed)", bucket, aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
		}
	}
	return nil
}

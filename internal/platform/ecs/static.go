package ecs

// Static sites (services.<name>.static): a private S3 bucket read by one
// CloudFront distribution. Each release is uploaded once under its own
// prefix, releases/<digest>/, where <digest> is the SHA-256 of its files
// (names, contents and headers); the distribution's S3 origin path then
// points at that prefix and the distribution is invalidated. Nothing is
// overwritten or deleted, so a rollback points the origin back at a prefix
// that is still there, and the same files built twice are uploaded once.
// A manifest, releases/<digest>.json (outside every origin path, so never
// served), is written after the last file: a release without one is
// incomplete and never activated.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3API is the part of the S3 client static sites use.
type S3API interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	// PruneReleases'
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObjects(context.Context, *s3.DeleteObjectsInput, ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
}

// CloudFrontAPI is the part of the CloudFront client static sites use.
type CloudFrontAPI interface {
	GetDistributionConfig(context.Context, *cloudfront.GetDistributionConfigInput, ...func(*cloudfront.Options)) (*cloudfront.GetDistributionConfigOutput, error)
	UpdateDistribution(context.Context, *cloudfront.UpdateDistributionInput, ...func(*cloudfront.Options)) (*cloudfront.UpdateDistributionOutput, error)
	CreateInvalidation(context.Context, *cloudfront.CreateInvalidationInput, ...func(*cloudfront.Options)) (*cloudfront.CreateInvalidationOutput, error)
	// PruneReleases: every distribution reading a bucket.
	ListDistributions(context.Context, *cloudfront.ListDistributionsInput, ...func(*cloudfront.Options)) (*cloudfront.ListDistributionsOutput, error)
}

// SiteClients reach the buckets and distributions of static sites.
type SiteClients struct {
	S3         S3API
	CloudFront CloudFrontAPI
}

// NewSiteClients connects to S3 and CloudFront as NewClients does to ECS;
// with an endpoint (moto) S3 is addressed by path, not by virtual host.
func NewSiteClients(ctx context.Context, o ClientOptions) (SiteClients, error) {
	cfg, base, err := loadConfig(ctx, o)
	if err != nil {
		return SiteClients{}, err
	}
	return SiteClients{
		S3: s3.NewFromConfig(cfg, func(opt *s3.Options) {
			opt.BaseEndpoint = base
			opt.UsePathStyle = base != nil
		}),
		CloudFront: cloudfront.NewFromConfig(cfg, func(opt *cloudfront.Options) { opt.BaseEndpoint = base }),
	}, nil
}

// Site is one static service's bucket and distribution.
type Site struct {
	Service      string
	Bucket       string
	Distribution string // CloudFront distribution ID
}

func (s Site) String() string {
	return fmt.Sprintf("static service %s (bucket %s, distribution %s)", s.Service, s.Bucket, s.Distribution)
}

// SiteFile is one file of a release, as it is uploaded.
type SiteFile struct {
	Key          string `json:"key"` // relative to the release's prefix, with /
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	ContentType  string `json:"content_type"`
	CacheControl string `json:"cache_control"`
	path         string // the file on disk
}

// SiteRelease is a directory of built files, checked and hashed.
type SiteRelease struct {
	Digest string     `json:"digest"` // hex SHA-256 of the files' keys, hashes and headers
	Files  []SiteFile `json:"files"`
}

// Prefix is where the release's files are in the bucket, with a trailing /.
func (r SiteRelease) Prefix() string { return ReleasePrefix(r.Digest) }

// ReleasePrefix is the key prefix of the release with digest d.
func ReleasePrefix(d string) string { return "releases/" + d + "/" }

// OriginPath is the distribution's origin path that serves the release with digest d.
func OriginPath(d string) string { return "/releases/" + d }

// releaseOf is the digest of the release an origin path serves (OriginPath's
// inverse), or "" when it serves none.
func releaseOf(originPath *string) string {
	if d, ok := strings.CutPrefix(aws.ToString(originPath), "/releases/"); ok && digestRe.MatchString(d) {
		return d
	}
	return ""
}

func manifestKey(d string) string { return "releases/" + d + ".json" }

var digestRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ScanSite reads the built files of a static site. It refuses what could
// publish something outside dir: a symbolic link whose target leaves dir
// (or is a directory), a name with "..", a backslash or a control
// character, and anything but regular files and directories. dir needs an
// index.html, the distribution's default root object.
func ScanSite(dir string) (SiteRelease, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return SiteRelease{}, err
	}
	if root, err = filepath.EvalSymlinks(root); err != nil {
		return SiteRelease{}, fmt.Errorf("static files %s: %w (did the build commands write it?)", dir, err)
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return SiteRelease{}, fmt.Errorf("static files %s: not a directory (name the directory of the built files)", dir)
	}
	var files []SiteFile
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if bad := badName(d.Name()); bad != "" {
			return fmt.Errorf("static files %s: %q %s: refusing to publish it (rename it)", dir, key, bad)
		}
		if private(d.Name()) {
			return fmt.Errorf("static files %s: %q is a repository's history or an environment file, never part of a site: refusing to publish it to the world (point static.dir at the directory of the built files only)", dir, key)
		}
		real := p
		switch mode := d.Type(); {
		case mode.IsDir():
			return nil
		case mode&fs.ModeSymlink != 0:
			if real, err = filepath.EvalSymlinks(p); err != nil {
				return fmt.Errorf("static files %s: %q is a broken symbolic link: %w", dir, key, err)
			}
			if !insideDir(root, real) {
				return fmt.Errorf("static files %s: %q is a symbolic link to %s, outside %s: refusing to publish it (copy the file into the directory instead)", dir, key, real, dir)
			}
			if st, err := os.Stat(real); err != nil || !st.Mode().IsRegular() {
				return fmt.Errorf("static files %s: %q is a symbolic link to %s, which is not a regular file: refusing to publish it", dir, key, real)
			}
		case !mode.IsRegular():
			return fmt.Errorf("static files %s: %q is not a regular file (%s): refusing to publish it", dir, key, mode)
		}
		f, err := scanFile(real, key)
		if err != nil {
			return fmt.Errorf("static files %s: %w", dir, err)
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return SiteRelease{}, err
	}
	if !slices.ContainsFunc(files, func(f SiteFile) bool { return f.Key == "index.html" }) {
		return SiteRelease{}, fmt.Errorf("static files %s have no index.html (the distribution's default root object): check static.dir and the build commands", dir)
	}
	slices.SortFunc(files, func(a, b SiteFile) int { return strings.Compare(a.Key, b.Key) })
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\n", f.Key, f.SHA256, f.ContentType, f.CacheControl)
	}
	return SiteRelease{Digest: hex.EncodeToString(h.Sum(nil)), Files: files}, nil
}

// MaxSiteFile is the largest file a site may have: S3 takes at most 5 GiB
// in one PutObject.
const MaxSiteFile = 5 << 30

// scanFile hashes the regular file at p, published under key, as it reads
// it: a site's files are never held in memory, however large.
func scanFile(p, key string) (SiteFile, error) {
	fh, err := openFile(p)
	if err != nil {
		return SiteFile{}, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	switch {
	case err != nil:
		return SiteFile{}, err
	case !st.Mode().IsRegular():
		return SiteFile{}, fmt.Errorf("%q is not a regular file (%s): refusing to publish it", key, st.Mode().Type())
	case st.Size() > MaxSiteFile:
		return SiteFile{}, fmt.Errorf("%q is %d bytes, more than S3 takes in one upload (5 GiB): serve it from elsewhere, or split it", key, st.Size())
	}
	head := make([]byte, 512) // all http.DetectContentType reads
	n, err := io.ReadFull(fh, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return SiteFile{}, err
	}
	h := sha256.New()
	h.Write(head[:n])
	size, err := io.Copy(h, fh)
	if err != nil {
		return SiteFile{}, err
	}
	return SiteFile{Key: key, Size: int64(n) + size, SHA256: hex.EncodeToString(h.Sum(nil)),
		ContentType: ContentType(key, head[:n]), CacheControl: CacheControl(key), path: p}, nil
}

// openFile opens p to read it without blocking on a named pipe swapped in
// for the file (its Stat then says it is not a regular file).
func openFile(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// badName says what is wrong with a file name that must not become a key.
func badName(name string) string {
	switch {
	case strings.Contains(name, ".."):
		return `has ".." in its name`
	case strings.Contains(name, `\`):
		return "has a backslash in its name"
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "has a control character in its name"
	}
	return ""
}

// private says whether a file or directory name is one a build output
// never needs and whose publication leaks: a repository's history and
// configuration (.git, a worktree's .git file, .hg, .svn), with its remote's
// credentials and every past version of the code, or an environment file
// (.env, .env.production) with the secrets it holds. static.dir "." (a site
// with no build step) would otherwise publish them.
func private(name string) bool {
	switch name {
	case ".git", ".hg", ".svn", ".env":
		return true
	}
	return strings.HasPrefix(name, ".env.")
}

func insideDir(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// contentTypes fixes the types of the web's usual files, so that a release
// and its digest do not depend on the machine's mime tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
	".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8", ".json": "application/json",
	".map": "application/json", ".webmanifest": "application/manifest+json", ".txt": "text/plain; charset=utf-8",
	".xml": "application/xml", ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
	".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif", ".ico": "image/vnd.microsoft.icon",
	".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf", ".wasm": "application/wasm",
	".pdf": "application/pdf", ".mp4": "video/mp4", ".webm": "video/webm", ".mp3": "audio/mpeg",
}

// ContentType is a file's Content-Type: by extension, else sniffed from its content.
func ContentType(key string, data []byte) string {
	ext := strings.ToLower(path.Ext(key))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return http.DetectContentType(data)
}

// hashedName matches a bundler's content-hashed file name, such as
// index-BfQ2x9aZ.js (Vite) or main.3f2a1b4c.chunk.js (webpack).
var hashedName = regexp.MustCompile(`[.-]([A-Za-z0-9_]{8,})\.[A-Za-z0-9.]+$`)

// CacheControl is a file's Cache-Control: content-hashed assets never
// change under their name and are cached for a year; everything else
// (index.html first) is revalidated by ETag on every use. A hash has
// letters and digits: a name with a date or a number (report-20240101.pdf,
// feed-00000042.xml), which a site may replace under the same name, is not
// taken for one (a hash of digits alone is revalidated: slower, never stale).
func CacheControl(key string) string {
	base := path.Base(key)
	if !strings.HasSuffix(base, ".html") {
		if m := hashedName.FindStringSubmatch(base); m != nil && strings.ContainsAny(m[1], "0123456789") &&
			strings.ContainsFunc(m[1], func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }) {
			return "public, max-age=31536000, immutable"
		}
	}
	return "no-cache"
}

// uploaders is how many files Upload uploads at once.
const uploaders = 8

// Upload puts the release's files under its prefix, then its manifest. Of
// a release whose manifest is in the bucket already only the files that are
// not there are uploaded (none, unless something deletes it), and the
// manifest is written again. say reports progress.
func (c SiteClients) Upload(ctx context.Context, site Site, rel SiteRelease, say func(string, ...any)) error {
	files := rel.Files
	if ok, err := c.released(ctx, site, rel.Digest); err != nil {
		return err
	} else if ok {
		// Its manifest is there: its files should be too, unless a prune
		// (or a lifecycle rule, or a hand) is deleting it. What is missing
		// is uploaded again, and the manifest written again, which makes
		// the release new to a prune (SitePruneOptions.MinAge).
		if files, err = c.missing(ctx, site, rel); err != nil {
			return err
		}
		if len(files) == 0 {
			say("%s: release %s is in bucket %s already", site.Service, short(rel.Digest), site.Bucket)
		} else {
			say("%s: release %s is in bucket %s but %d of its files are not: uploading them again", site.Service, short(rel.Digest), site.Bucket, len(files))
		}
	} else {
		say("%s: uploading %d files to s3://%s/%s", site.Service, len(rel.Files), site.Bucket, rel.Prefix())
	}
	// uploaders upload at once, each taking the next file: a site of a
	// million files starts uploaders goroutines, not a million.
	var wg sync.WaitGroup
	errs := make([]error, len(files))
	next := make(chan int)
	for range min(uploaders, len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = c.put(ctx, site, rel.Prefix(), files[i])
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	failed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if failed > 1 {
		return fmt.Errorf("%w (and %d more files failed)", first, failed-1)
	} else if first != nil {
		return first
	}
	manifest, err := json.MarshalIndent(rel, "", "  ")
	if err != nil {
		return err
	}
	if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &site.Bucket, Key: aws.String(manifestKey(rel.Digest)),
		Body: bytes.NewReader(manifest), ContentType: aws.String("application/json"), CacheControl: aws.String("no-store")}); err != nil {
		return fmt.Errorf("%s: writing the manifest: %w", site, siteErr(err, "s3://"+site.Bucket+"/"+manifestKey(rel.Digest)))
	}
	return nil
}

// put uploads one file, streamed from disk (never held in memory) and
// checked against the scan, so a file changed (or swapped for a link)
// since is not published under its hash: its size is checked before the
// upload, its SHA-256 as the upload reads its end (a mismatch fails the
// request before it completes), and S3 checks the body against the SHA-256
// of the scan (x-amz-checksum-sha256) as it stores it.
func (c SiteClients) put(ctx context.Context, site Site, prefix string, f SiteFile) error {
	changed := fmt.Errorf("%s: %s changed while it was being published: build again", site, f.Key)
	fh, err := openFile(f.path)
	if err != nil {
		return fmt.Errorf("%s: %w", site, err)
	}
	defer fh.Close()
	if st, err := fh.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s: %s is no longer a regular file", site, f.Key)
	} else if st.Size() != f.Size {
		return changed
	}
	sum, err := hex.DecodeString(f.SHA256)
	if err != nil {
		return fmt.Errorf("%s: %s: bad SHA-256 %q", site, f.Key, f.SHA256)
	}
	key := prefix + f.Key
	body := &checkedReader{r: io.NewSectionReader(fh, 0, f.Size), size: f.Size, want: sum, h: sha256.New(), changed: changed}
	_, err = c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &site.Bucket, Key: &key, Body: body, ContentLength: aws.Int64(f.Size),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum)),
		ContentType:    &f.ContentType, CacheControl: &f.CacheControl}) // encrypted by the bucket's default (SSE-S3 in the export)
	if errors.Is(err, changed) {
		return changed
	} else if err != nil {
		return fmt.Errorf("%s: uploading %s: %w", site, f.Key, siteErr(err, "s3://"+site.Bucket+"/"+key))
	}
	return nil
}

// checkedReader reads a file of size bytes whose SHA-256 must be want: a
// read from its start to its end hashes it, and returns changed instead of
// io.EOF when the hash differs. The SDK may read it more than once (to sign
// it, to checksum it, to send it), seeking back to the start each time.
type checkedReader struct {
	r       *io.SectionReader
	size    int64
	want    []byte
	h       hash.Hash
	pos     int64 // where the next Read reads
	hashed  int64 // how much of the file, from its start, h has seen
	changed error
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.pos == c.hashed {
		c.h.Write(p[:n])
		c.hashed += int64(n)
	}
	c.pos += int64(n)
	if err == io.EOF && (c.hashed != c.size || !bytes.Equal(c.h.Sum(nil), c.want)) {
		return n, c.changed // read out of order (not checked), or not the file scanned
	}
	return n, err
}

func (c *checkedReader) Seek(offset int64, whence int) (int64, error) {
	pos, err := c.r.Seek(offset, whence)
	if err != nil {
		return pos, err
	}
	c.pos = pos
	if pos == 0 {
		c.h.Reset()
		c.hashed = 0
	}
	return pos, nil
}

// missing returns the files of rel that are not in the bucket at their
// size.
func (c SiteClients) missing(ctx context.Context, site Site, rel SiteRelease) ([]SiteFile, error) {
	have := map[string]int64{}
	p := s3.NewListObjectsV2Paginator(c.S3, &s3.ListObjectsV2Input{Bucket: &site.Bucket, Prefix: aws.String(rel.Prefix())})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", site, siteErr(err, "s3://"+site.Bucket+"/"+rel.Prefix()))
		}
		for _, o := range page.Contents {
			have[strings.TrimPrefix(aws.ToString(o.Key), rel.Prefix())] = aws.ToInt64(o.Size)
		}
	}
	var out []SiteFile
	for _, f := range rel.Files {
		if n, ok := have[f.Key]; !ok || n != f.Size {
			out = append(out, f)
		}
	}
	return out, nil
}

// released says whether the release with digest d is complete in the bucket.
func (c SiteClients) released(ctx context.Context, site Site, d string) (bool, error) {
	_, err := c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &site.Bucket, Key: aws.String(manifestKey(d))})
	var nf *s3types.NotFound
	var ae smithy.APIError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &nf) || errors.As(err, &ae) && (ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchKey"):
		return false, nil
	}
	return false, fmt.Errorf("%s: %w", site, siteErr(err, "s3://"+site.Bucket+"/"+manifestKey(d)))
}

// Activate points the distribution's origin for the bucket at the release
// with digest d and invalidates every path, unless it serves that release
// already. The release must be whole in the bucket: its manifest, and every
// file the manifest lists at its size (a prune, or a failed upload's retry
// racing one, could leave a manifest without its files). A release a prune
// deleted while the distribution was being switched to it (the prune
// deletes the manifest first) is found right after the switch, and the
// distribution is pointed back.
func (c SiteClients) Activate(ctx context.Context, site Site, d string, say func(string, ...any)) error {
	if !digestRe.MatchString(d) {
		return fmt.Errorf("%s: %q is not a release digest", site, d)
	}
	if err := c.whole(ctx, site, d); err != nil {
		return err
	}
	prev, changed, err := c.setOrigin(ctx, site, OriginPath(d))
	if err != nil {
		return err
	}
	if !changed {
		say("%s: distribution %s serves release %s already", site.Service, site.Distribution, short(d))
		return nil
	}
	if ok, err := c.released(ctx, site, d); err != nil || !ok {
		if _, _, berr := c.setOrigin(ctx, site, prev); berr != nil {
			return fmt.Errorf("%s: release %s went from the bucket as the distribution was pointed at it (a prune?), and pointing it back at %q failed: %w; point it at a release in the bucket by hand", site, short(d), prev, berr)
		}
		return fmt.Errorf("%s: release %s went from the bucket as the distribution was pointed at it (a prune?); it serves %q again: deploy the release again from its commit", site, short(d), prev)
	}
	ref := fmt.Sprintf("cutover-%s-%d", short(d), time.Now().UnixNano())
	if _, err := c.CloudFront.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: &site.Distribution,
		InvalidationBatch: &cftypes.InvalidationBatch{CallerReference: &ref, Paths: &cftypes.Paths{Quantity: aws.Int32(1), Items: []string{"/*"}}}}); err != nil {
		return fmt.Errorf("%s: origin now %s, but invalidating the cache failed (edges serve the old files until they expire; invalidate /* by hand): %w", site, OriginPath(d), siteErr(err, "distribution "+site.Distribution))
	}
	say("%s: distribution %s now serves release %s (origin path %s), cache invalidated", site.Service, site.Distribution, short(d), OriginPath(d))
	return nil
}

// whole checks that the release with digest d is whole in the bucket: its
// manifest, and the files it lists at their sizes.
func (c SiteClients) whole(ctx context.Context, site Site, d string) error {
	gone := fmt.Errorf("%s: release %s is not in the bucket (no %s): its files were deleted or never uploaded completely; deploy it again from its commit", site, short(d), manifestKey(d))
	out, err := c.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &site.Bucket, Key: aws.String(manifestKey(d))})
	var nk *s3types.NoSuchKey
	var ae smithy.APIError
	switch {
	case errors.As(err, &nk) || errors.As(err, &ae) && (ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchKey"):
		return gone
	case err != nil:
		return fmt.Errorf("%s: %w", site, siteErr(err, "s3://"+site.Bucket+"/"+manifestKey(d)))
	}
	defer out.Body.Close()
	var rel SiteRelease
	if err := json.NewDecoder(io.LimitReader(out.Body, maxManifest)).Decode(&rel); err != nil || rel.Digest != d {
		return fmt.Errorf("%s: the manifest %s is not release %s's (%v): deploy it again from its commit", site, manifestKey(d), short(d), err)
	}
	missing, err := c.missing(ctx, site, rel)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: release %s is not whole in the bucket: %d of its %d files are missing (%s first): deploy it again from its commit, which uploads them", site, short(d), len(missing), len(rel.Files), missing[0].Key)
	}
	return nil
}

// setOrigin points the distribution's origin for the bucket at path; it
// returns the path it had, and whether it changed.
func (c SiteClients) setOrigin(ctx context.Context, site Site, path string) (prev string, changed bool, err error) {
	cfg, err := c.CloudFront.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: &site.Distribution})
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", site, siteErr(err, "distribution "+site.Distribution))
	}
	origin, err := bucketOrigin(cfg.DistributionConfig, site)
	if err != nil {
		return "", false, err
	}
	prev = aws.ToString(origin.OriginPath)
	if prev == path {
		return prev, false, nil
	}
	origin.OriginPath = &path
	if _, err := c.CloudFront.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: &site.Distribution, IfMatch: cfg.ETag,
		DistributionConfig: cfg.DistributionConfig}); err != nil {
		return prev, false, fmt.Errorf("%s: pointing the origin at %s: %w", site, path, siteErr(err, "distribution "+site.Distribution))
	}
	return prev, true, nil
}

// Serving returns the digest of the release the distribution serves, or
// "" when its origin path is not a release's.
func (c SiteClients) Serving(ctx context.Context, site Site) (string, error) {
	cfg, err := c.CloudFront.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: &site.Distribution})
	if err != nil {
		return "", fmt.Errorf("%s: %w", site, siteErr(err, "distribution "+site.Distribution))
	}
	origin, err := bucketOrigin(cfg.DistributionConfig, site)
	if err != nil {
		return "", err
	}
	return releaseOf(origin.OriginPath), nil
}

// bucketOrigin is the distribution's origin that reads the site's bucket.
func bucketOrigin(cfg *cftypes.DistributionConfig, site Site) (*cftypes.Origin, error) {
	if cfg != nil && cfg.Origins != nil {
		for i := range cfg.Origins.Items {
			o := &cfg.Origins.Items[i]
			if strings.HasPrefix(aws.ToString(o.DomainName), site.Bucket+".s3.") {
				return o, nil
			}
		}
	}
	return nil, fmt.Errorf("%s: the distribution has no origin reading bucket %s (an origin domain %s.s3.REGION.amazonaws.com): check environments.<env>.ecs.services.%s.bucket and distribution",
		site, site.Bucket, site.Bucket, site.Service)
}

func siteErr(err error, resource string) error {
	if e := explain(err, resource); e != nil {
		return e
	}
	return err
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// siteRefPrefix starts what a revision records as a static service's
// "image": the release of its files, pinned by digest.
const siteRefPrefix = "site@sha256:"

// SiteRef is how a revision records the release with digest d.
func SiteRef(d string) string { return siteRefPrefix + d }

// SiteDigest is the digest of a release recorded by SiteRef, or "" when ref is not one.
func SiteDigest(ref string) string {
	d, ok := strings.CutPrefix(ref, siteRefPrefix)
	if !ok || !digestRe.MatchString(d) {
		return ""
	}
	return d
}

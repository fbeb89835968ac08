package release

// Static services on ECS environments (services.<name>.static): no image,
// no task definition. Before the deployment their files are built
// (build.commands, unless the pipeline's execution built them) and uploaded
// to the site's bucket under releases/<digest>/; the revision records each
// as site@sha256:<digest>. Once the ECS deployment of the revision
// succeeded, each site's distribution is pointed at the revision's release
// and invalidated, so a deploy, a rollback and a redeploy of an older
// revision all publish exactly the files that revision recorded.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/platform/ecs"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/store"
)

// staticNames are the services published to S3 and CloudFront, sorted.
func staticNames(cfg *config.Config) []string {
	var out []string
	for _, name := range cfg.ServiceNames() {
		if cfg.Services[name].Static != nil {
			out = append(out, name)
		}
	}
	return out
}

// containers are the services that run on ECS, sorted.
func (s *ecsSession) containers() []string {
	var out []string
	for _, name := range s.cfg.ServiceNames() {
		if s.cfg.Services[name].Static == nil {
			out = append(out, name)
		}
	}
	return out
}

// site is a static service's bucket and distribution, from cutover.yaml or
// the app stack's outputs.
func (s *ecsSession) site(ctx context.Context, name string) (ecs.Site, error) {
	if s.cfg.Environments[s.env].ECS.Stack != "" {
		c, err := s.clients(ctx)
		if err != nil {
			return ecs.Site{}, err
		}
		if err := s.fromStack(ctx, c); err != nil {
			return ecs.Site{}, err
		}
	}
	es := s.cfg.Environments[s.env].ECS.Services[name]
	if es == nil || es.Bucket == "" || es.Distribution == "" {
		return ecs.Site{}, fmt.Errorf("static service %s: environments.%s.ecs.services.%s needs bucket and distribution (or ecs.stack, the app stack that outputs them)", name, s.env, name)
	}
	return ecs.Site{Service: name, Bucket: es.Bucket, Distribution: es.Distribution}, nil
}

func (s *ecsSession) siteClients(ctx context.Context) (ecs.SiteClients, error) {
	x := s.cfg.Environments[s.env].ECS
	return ecs.NewSiteClients(ctx, ecs.ClientOptions{Region: x.Region, Profile: x.Profile, Endpoint: x.Endpoint})
}

// uploadStatic builds each static service's files (not when the pipeline's
// execution built them: built is true), checks them and uploads them to the
// service's bucket; it returns service → site@sha256:<digest>, what the
// revision records. given are the deploy's images: a release promoted from
// another environment (site@sha256:...) is compared with the files built here.
func (s *ecsSession) uploadStatic(ctx context.Context, built bool, given map[string]string) (map[string]string, error) {
	names := staticNames(s.cfg)
	if len(names) == 0 {
		return nil, nil
	}
	sc, err := s.siteClients(ctx)
	if err != nil {
		return nil, err
	}
	say := func(format string, a ...any) { s.m.note(format, a...) }
	buildID := local.NewBuildID(time.Now())
	refs := map[string]string{}
	for _, name := range names {
		site, err := s.site(ctx, name)
		if err != nil {
			return nil, err
		}
		if !built {
			if err := local.RunBuildCommands(ctx, s.cfg, name, buildID, say); err != nil {
				return nil, err
			}
		}
		dir := filepath.Join(s.cfg.ContextDir(name), filepath.FromSlash(s.cfg.Services[name].Static.Dir))
		// The build commands ran: static.dir must still be inside the repository.
		if err := config.Confined(s.cfg.Root(), dir); err != nil {
			return nil, fmt.Errorf("services.%s.static.dir: %v", name, err)
		}
		rel, err := ecs.ScanSite(dir)
		if err != nil {
			return nil, fmt.Errorf("services.%s.static: %w", name, err)
		}
		if d := ecs.SiteDigest(given[name]); d != "" && d != rel.Digest {
			// Each environment has its own bucket: the files are uploaded
			// from this build, which should be the release verified before.
			say("%s: warning: the files built here (release %s) differ from release %s promoted from the previous environment (is the build reproducible?); publishing these", name, rel.Digest[:12], d[:12])
		}
		if err := sc.Upload(ctx, site, rel, say); err != nil {
			return nil, err
		}
		refs[name] = ecs.SiteRef(rel.Digest)
	}
	return refs, nil
}

// activateStatic points each static service's distribution at the release
// rev recorded for it, and records that in the event log.
func (s *ecsSession) activateStatic(ctx context.Context, rev store.Revision) error {
	names := staticNames(s.cfg)
	if len(names) == 0 {
		return nil
	}
	sc, err := s.siteClients(ctx)
	if err != nil {
		return err
	}
	for _, name := range names {
		ref := rev.Services[name].Image
		d := ecs.SiteDigest(ref)
		if d == "" {
			return fmt.Errorf("static service %s: revision %s records %q, not a release of its files (site@sha256:...): deploy a new revision instead", name, rev.ID, ref)
		}
		site, err := s.site(ctx, name)
		if err != nil {
			return err
		}
		if err := sc.Activate(ctx, site, d, func(format string, a ...any) { s.m.note(format, a...) }); err != nil {
			return fmt.Errorf("revision %s is deployed on ECS, but %w", rev.ID, err)
		}
		data, _ := json.Marshal(map[string]string{"revision": rev.ID, "service": name, "bucket": site.Bucket,
			"distribution": site.Distribution, "origin_path": ecs.OriginPath(d)})
		if _, err := s.store.AppendEvent(context.WithoutCancel(ctx), store.Event{Project: s.cfg.Project, Environment: s.env,
			Kind: "ecs.static_published", Message: fmt.Sprintf("revision %s: %s serves s3://%s/%s", rev.ID, name, site.Bucket, ecs.ReleasePrefix(d)), Data: data}); err != nil {
			s.m.log().Warn("recording the static release", "service", name, "err", err)
		}
	}
	s.m.retainSites(ctx)
	return nil
}

// activateFollowed publishes the static sites of a deployment whose
// cutover stopped after ECS finished it but before its sites were switched.
func (s *ecsSession) activateFollowed(ctx context.Context, d store.Deployment) error {
	if d.Status != store.DeploymentSucceeded || len(staticNames(s.cfg)) == 0 {
		return nil
	}
	rev, err := s.store.GetRevision(ctx, d.Revision)
	if err != nil {
		return err
	}
	return s.activateStatic(ctx, rev)
}

// staticStatus describes a static service: its bucket, its distribution
// and the release the distribution serves.
func (s *ecsSession) staticStatus(ctx context.Context, name string) ECSService {
	st := ECSService{Service: name, Status: "static"}
	site, err := s.site(ctx, name)
	if err == nil {
		var sc ecs.SiteClients
		if sc, err = s.siteClients(ctx); err == nil {
			var d string
			if d, err = sc.Serving(ctx, site); err == nil {
				st.Site = &SiteStatus{Bucket: site.Bucket, Distribution: site.Distribution, Release: d}
			}
		}
	}
	if err != nil {
		st.Error = err.Error()
	}
	return st
}

// SiteStatus is a static service's site on AWS.
type SiteStatus struct {
	Bucket       string `json:"bucket"`
	Distribution string `json:"distribution"`
	Release      string `json:"release,omitempty"` // digest of the files served (releases/<release>/), "" when none
}

// PublishSiteOptions name a directory of built files and the site it is
// published to, as the exported pipeline's publish action gives them.
type PublishSiteOptions struct {
	Dir, Service, Bucket, Distribution string
	Region, Profile, Endpoint          string // the AWS region, shared config profile and endpoint (tests); empty: the standard chain
}

// PublishedSite is what PublishSite did.
type PublishedSite struct {
	Service      string `json:"service"`
	Bucket       string `json:"bucket"`
	Distribution string `json:"distribution"`
	Release      string `json:"release"` // digest: the files are under releases/<release>/
	Files        int    `json:"files"`
}

// PublishSite publishes a directory of built files as `cutover deploy` does
// for a static service on ECS (upload under releases/<digest>/, then point
// the distribution at it and invalidate), with no cutover.yaml and no
// store: the exported pipeline's publish action runs it on the files its
// build stage produced, so that a release published by the pipeline and
// one published by cutover deploy are the same objects under the same key.
func PublishSite(ctx context.Context, o PublishSiteOptions, say func(string, ...any)) (PublishedSite, error) {
	site := ecs.Site{Service: o.Service, Bucket: o.Bucket, Distribution: o.Distribution}
	if o.Service == "" || o.Bucket == "" || o.Distribution == "" {
		return PublishedSite{}, UsageError{"--service, --bucket and --distribution are required"}
	}
	rel, err := ecs.ScanSite(o.Dir)
	if err != nil {
		return PublishedSite{}, err
	}
	sc, err := ecs.NewSiteClients(ctx, ecs.ClientOptions{Region: o.Region, Profile: o.Profile, Endpoint: o.Endpoint})
	if err != nil {
		return PublishedSite{}, err
	}
	if err := sc.Upload(ctx, site, rel, say); err != nil {
		return PublishedSite{}, err
	}
	if err := sc.Activate(ctx, site, rel.Digest, say); err != nil {
		return PublishedSite{}, err
	}
	return PublishedSite{Service: o.Service, Bucket: o.Bucket, Distribution: o.Distribution, Release: rel.Digest, Files: len(rel.Files)}, nil
}

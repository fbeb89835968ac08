package pipeline

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

const promoteConfig = `version: 1
project: %s
services:
  hello:
    build: { context: hello, commands: ["echo \"built $CUTOVER_BUILD_ID\" > hello.txt"] }
    port: 8080
environments:
  staging: { branch: develop, listen: { port: 18180 } }
  production:
    branch: main
    promote_from: staging
    listen: { port: 18190 }
    approval: { required: true }
pipeline:
  stages:
    - name: build
      actions: [{ name: hello, kind: build, service: hello }]
    - name: staging
      branches: [develop]
      actions: [{ name: deploy, kind: deploy, environment: staging }]
    - name: production
      branches: [main]
      actions:
        - { name: approve, kind: approval, environment: production }
        - { name: deploy, kind: deploy, environment: production, run_order: 2 }
`

// The seeds' flow on one commit: develop deploys it to staging; the same
// commit pushed to main (a fast-forward) is approved and deploys to
// production the very images staging ran, each environment with a revision
// of its own in the real store. The deployer records revisions and
// deployments exactly as the CLI's does (local.NewRevision, CreateRevision);
// only the platform (containers, traffic) is left out.
func TestSameCommitPromotesFromStagingToProduction(t *testing.T) {
	e, _, out := newEngine(t)
	ctx := context.Background()
	type deployed struct {
		env    string
		rev    store.Revision
		images map[string]string
	}
	var got []deployed
	e.Deploy = func(ctx context.Context, cfg *config.Config, env string, images map[string]string, source string, logf func(string)) (store.Deployment, error) {
		rev := local.NewRevision(cfg, env, images, source)
		if err := e.Store.CreateRevision(ctx, rev); err != nil {
			return store.Deployment{}, err
		}
		d := store.Deployment{ID: "d-" + env + "-" + time.Now().Format("150405.000000"), Project: cfg.Project, Environment: env,
			Revision: rev.ID, Strategy: "rolling", Status: store.DeploymentSucceeded}
		if err := e.Store.CreateDeployment(ctx, d); err != nil {
			return store.Deployment{}, err
		}
		got = append(got, deployed{env, rev, images})
		return d, nil
	}
	project := "pm-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	repo, commit := testenv.GitRepo(t, "develop", map[string]string{
		"cutover.yaml":     strings.Replace(promoteConfig, "%s", project, 1),
		"hello/Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
	})
	staging, err := e.Run(ctx, Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "develop", Commit: commit})
	if err != nil || staging.Status != "succeeded" {
		t.Fatalf("develop: %v %s %s\n%s", err, staging.Status, staging.Error, out)
	}
	testenv.Git(t, repo, "branch", "main", commit) // the fast-forward of main to the commit staging ran

	done := make(chan store.Execution, 1)
	go func() {
		x, err := e.Run(ctx, Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "main", Commit: commit})
		if err != nil {
			t.Error(err)
		}
		done <- x
	}()
	approval := waitPending(t, e.Store, project)
	var ev Evidence
	if err := json.Unmarshal(approval.Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Promotion == nil || ev.Promotion.Deployment == "" || ev.Images["hello"] != got[0].images["hello"] {
		t.Fatalf("the approval must show the staging images it promotes (%s), evidence: %s", got[0].images["hello"], approval.Evidence)
	}
	if _, err := e.Store.DecideApproval(ctx, approval.Execution, approval.Action, true, "approver", "ship it"); err != nil {
		t.Fatal(err)
	}
	prod := <-done
	if prod.Status != "succeeded" {
		t.Fatalf("main: %s %s\n%s", prod.Status, prod.Error, out)
	}
	if len(got) != 2 || got[0].env != "staging" || got[1].env != "production" {
		t.Fatalf("deploys %+v", got)
	}
	s, p := got[0].rev, got[1].rev
	if s.ID == p.ID || p.Environment != "production" || s.Source != RevisionSource(commit) || p.Source != s.Source {
		t.Fatalf("revisions must be per environment with the commit as source: staging %+v, production %+v", s, p)
	}
	if !strings.HasPrefix(p.Services["hello"].Image, "sha256:") || p.Services["hello"] != s.Services["hello"] {
		t.Fatalf("production must run staging's image and config by digest: staging %+v, production %+v", s.Services, p.Services)
	}
	if !strings.Contains(out.String(), "promoting to production the images staging verified for "+commit[:7]) {
		t.Fatalf("the deploy log does not say what it promotes:\n%s", out)
	}
	for _, id := range []string{s.ID, p.ID} {
		if _, err := e.Store.GetRevision(ctx, id); err != nil {
			t.Fatalf("revision %s not stored: %v", id, err)
		}
	}
}

// A commit staging never ran deploys the images its own execution built,
// and the evidence says why nothing was promoted.
func TestFindPromotionNamesWhyNothingIsPromoted(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir()+"/cutover.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	rev := store.Revision{ID: "r-1", Project: "p", Environment: "staging", Source: RevisionSource("aaaaaaa1"),
		Services: map[string]store.ServiceRevision{"web": {Image: "sha256:1", ConfigHash: "c1"}}}
	if err := st.CreateRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDeployment(ctx, store.Deployment{ID: "d-1", Project: "p", Environment: "staging", Revision: "r-1", Strategy: "rolling", Status: store.DeploymentSucceeded}); err != nil {
		t.Fatal(err)
	}
	p, err := FindPromotion(ctx, st, "p", "staging", "bbbbbbb2", map[string]string{"web": "c1"})
	if err != nil || len(p.Images) != 0 || !strings.Contains(p.Reason, "no succeeded deployment of staging ran bbbbbbb") {
		t.Fatalf("other commit: %+v %v", p, err)
	}
	p, err = FindPromotion(ctx, st, "p", "staging", "aaaaaaa1", map[string]string{"web": "c2"})
	if err != nil || len(p.Images) != 0 || !strings.Contains(p.Reason, "another config of web") {
		t.Fatalf("other config: %+v %v", p, err)
	}
	p, err = FindPromotion(ctx, st, "p", "staging", "aaaaaaa1", map[string]string{"web": "c1"})
	if err != nil || p.Images["web"] != "sha256:1" || p.Deployment != "d-1" {
		t.Fatalf("same commit and config: %+v %v", p, err)
	}
}

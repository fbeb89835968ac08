package export

import (
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
)

// staticBluemed is the example with its frontend (a single-page app) served
// from S3 and CloudFront (seeds 000 and 002).
func staticBluemed(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(bluemed)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Services["frontend"].Static = &config.Static{Dir: "dist", SPA: true}
	return cfg
}

func TestAllStaticIsRefused(t *testing.T) {
	cfg := staticBluemed(t)
	cfg.Services["backend"].Static = &config.Static{Dir: "out"}
	if _, err := Templates(cfg); err == nil || !strings.Contains(err.Error(), "every service of cutover.yaml is static") {
		t.Fatalf("err = %v", err)
	}
}

// TestStaticFrontendOnCloudFront: the static service has no container, no
// target group and no image repository; its bucket is private and readable
// only by its own distribution (OAC, SigV4), the distribution serves HTTPS
// only with TLS 1.2+, answers client-side routes with index.html, and the
// pipeline uploads the built files to the bucket.
func TestStaticFrontendOnCloudFront(t *testing.T) {
	files, err := Templates(staticBluemed(t))
	if err != nil {
		t.Fatal(err)
	}
	tpl := map[string]map[string]any{}
	for _, f := range files {
		tpl[f.Name] = rendered(t, f)
	}
	if repos := resourcesOfType(tpl["shared"], "AWS::ECR::Repository"); len(repos) != 1 || repos["RepositoryBackend"] == nil {
		t.Errorf("repositories = %v, want the backend's only", repos)
	}
	for _, env := range []string{"staging", "production"} {
		m := tpl["app-"+env]
		for _, typ := range []string{"AWS::ECS::Service", "AWS::ECS::TaskDefinition"} {
			for id := range resourcesOfType(m, typ) {
				if strings.HasPrefix(id, "Frontend") {
					t.Errorf("app-%s: the static frontend has %s %s", env, typ, id)
				}
			}
		}
		for id := range resourcesOfType(m, "AWS::ElasticLoadBalancingV2::TargetGroup") {
			if strings.HasPrefix(id, "Frontend") {
				t.Errorf("app-%s: the static frontend has target group %s", env, id)
			}
		}
		b := resourcesOfType(m, "AWS::S3::Bucket")["FrontendSiteBucket"]
		if jsonOf(b["PublicAccessBlockConfiguration"]) != `{"BlockPublicAcls":true,"BlockPublicPolicy":true,"IgnorePublicAcls":true,"RestrictPublicBuckets":true}` || b["BucketEncryption"] == nil {
			t.Errorf("app-%s: site bucket is not private and encrypted: %v", env, b)
		}
		pol := jsonOf(resourcesOfType(m, "AWS::S3::BucketPolicy")["FrontendSiteBucketPolicy"])
		if !strings.Contains(pol, `"Principal":{"Service":"cloudfront.amazonaws.com"}`) || !strings.Contains(pol, `"AWS:SourceArn":{"Fn::Sub":"arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${FrontendDistribution}"}`) ||
			!strings.Contains(pol, `"aws:SecureTransport":"false"`) || strings.Contains(pol, `"Principal":"*","Action":"s3:GetObject"`) {
			t.Errorf("app-%s: site bucket policy = %s", env, pol)
		}
		oac := resourcesOfType(m, "AWS::CloudFront::OriginAccessControl")["FrontendOriginAccessControl"]["OriginAccessControlConfig"].(map[string]any)
		if oac["SigningBehavior"] != "always" || oac["SigningProtocol"] != "sigv4" || oac["OriginAccessControlOriginType"] != "s3" {
			t.Errorf("app-%s: origin access control = %v", env, oac)
		}
		dc := resourcesOfType(m, "AWS::CloudFront::Distribution")["FrontendDistribution"]["DistributionConfig"].(map[string]any)
		beh := dc["DefaultCacheBehavior"].(map[string]any)
		cert := dc["ViewerCertificate"].(map[string]any)
		origin := dc["Origins"].([]any)[0].(map[string]any)
		if beh["ViewerProtocolPolicy"] != "redirect-to-https" || cert["MinimumProtocolVersion"] != "TLSv1.2_2021" || cert["SslSupportMethod"] != "sni-only" ||
			jsonOf(origin["OriginAccessControlId"]) != `{"Fn::GetAtt":["FrontendOriginAccessControl","Id"]}` || jsonOf(dc["Aliases"]) != `[{"Ref":"FrontendDomainName"}]` {
			t.Errorf("app-%s: distribution = %s", env, jsonOf(dc))
		}
		if spa := jsonOf(dc["CustomErrorResponses"]); !strings.Contains(spa, `"ErrorCode":403,"ResponseCode":200,"ResponsePagePath":"/index.html"`) {
			t.Errorf("app-%s: client-side routes do not get index.html: %s", env, spa)
		}
		params := m["Parameters"].(map[string]any)
		if p := jsonOf(params["FrontendCertificateArn"]); !strings.Contains(p, `acm:us-east-1:`) {
			t.Errorf("app-%s: the distribution's certificate is not required in us-east-1: %s", env, p)
		}
		// The SPA's canary checks the distribution's domain.
		c := resourcesOfType(m, "AWS::Synthetics::Canary")["FrontendCanary"]
		if url := jsonOf(c["Code"].(map[string]any)["Script"]); !strings.Contains(url, `https://${FrontendDomainName}/`) {
			t.Errorf("app-%s: SPA canary = %s", env, url)
		}
	}

	pipe := tpl["pipeline"]
	_, cmds := buildspecOf(t, resourcesOfType(pipe, "AWS::CodeBuild::Project")["BuildProject"])
	all := strings.Join(cmds, "\n")
	if !strings.Contains(all, `mkdir -p out/frontend && cp -R "frontend/dist"/. out/frontend/`) || strings.Contains(all, "bluemed/frontend:$TAG") {
		t.Errorf("build commands:\n%s", all)
	}
	// The deploy stage publishes the files with cutover publish-static, as
	// cutover deploy does, after the ECS services (run order 2) and before
	// Verify (3); nothing overwrites a release in place.
	stages := resourcesOfType(pipe, "AWS::CodePipeline::Pipeline")["Pipeline"]["Stages"].([]any)
	var publish map[string]any
	for _, st := range stages {
		st := st.(map[string]any)
		if st["Name"] != "Deploy-production" {
			continue
		}
		for _, a := range st["Actions"].([]any) {
			a := a.(map[string]any)
			switch a["Name"] {
			case "frontend":
				publish = a
			case "Verify":
				if a["RunOrder"] != float64(3) {
					t.Errorf("Verify runs at %v, want 3 (after the site is published)", a["RunOrder"])
				}
			}
		}
	}
	if publish == nil || jsonOf(publish["ActionTypeId"]) != `{"Category":"Build","Owner":"AWS","Provider":"CodeBuild","Version":"1"}` || publish["RunOrder"] != float64(2) ||
		jsonOf(publish["Configuration"].(map[string]any)["ProjectName"]) != `{"Ref":"PublishProductionFrontendProject"}` || jsonOf(publish["InputArtifacts"]) != `[{"Name":"BuildFrontend"}]` {
		t.Fatalf("production's frontend action: %s", jsonOf(publish))
	}
	if strings.Contains(jsonOf(stages), `"Provider":"S3"`) {
		t.Errorf("an S3 deploy action still extracts files in place: %s", jsonOf(stages))
	}
	p := resourcesOfType(pipe, "AWS::CodeBuild::Project")["PublishProductionFrontendProject"]
	if _, cmds := buildspecOf(t, p); len(cmds) != 1 || cmds[0] != `cutover publish-static --service "$SERVICE" --bucket "$BUCKET" --distribution "$DISTRIBUTION" "$CODEBUILD_SRC_DIR"` {
		t.Errorf("publish commands %q", cmds)
	}
	vars := envVars(p)
	if vars["SERVICE"] != "frontend" || jsonOf(vars["BUCKET"]) != `{"Fn::ImportValue":"bluemed-ProductionFrontendSiteBucketName"}` || jsonOf(vars["DISTRIBUTION"]) != `{"Fn::ImportValue":"bluemed-ProductionFrontendDistributionId"}` {
		t.Errorf("publish variables %v", vars)
	}
	env := p["Environment"].(map[string]any)
	if env["PrivilegedMode"] != false || jsonOf(p["ServiceRole"]) != `{"Fn::GetAtt":["PublishProductionRole","Arn"]}` {
		t.Errorf("publish project runs privileged or as another role: %s", jsonOf(p))
	}
	// Attack: one publish role for every environment let the staging
	// publish project write production's bucket and move its distribution,
	// and it could read the pipeline's secrets and use the source
	// connection, which publishing needs neither of. Each environment's
	// publish role reaches that environment's sites only.
	for _, c := range []struct{ env, other string }{{"Staging", "Production"}, {"Production", "Staging"}} {
		role := jsonOf(resourcesOfType(pipe, "AWS::IAM::Role")["Publish"+c.env+"Role"])
		for _, want := range []string{
			`"Action":["s3:GetObject","s3:PutObject"],"Effect":"Allow","Resource":[{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":s3:::",{"Fn::ImportValue":"bluemed-` + c.env + `FrontendSiteBucketName"},"/*"]]}`,
			`"Action":["cloudfront:GetDistributionConfig","cloudfront:UpdateDistribution","cloudfront:CreateInvalidation"],"Effect":"Allow","Resource":[{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":cloudfront::",{"Ref":"AWS::AccountId"},":distribution/",{"Fn::ImportValue":"bluemed-` + c.env + `FrontendDistributionId"}]]}`,
		} {
			if !strings.Contains(role, want) {
				t.Errorf("publish role of %s lacks %s:\n%s", c.env, want, role)
			}
		}
		for _, bad := range []string{"Delete", `"*"`, c.other, "secretsmanager", "codestar-connections"} {
			if strings.Contains(role, bad) {
				t.Errorf("publish role of %s has %s: %s", c.env, bad, role)
			}
		}
	}
	if _, ok := resourcesOfType(pipe, "AWS::IAM::Role")["PublishRole"]; ok {
		t.Error("a publish role for every environment is still there")
	}
	if pr := jsonOf(resourcesOfType(pipe, "AWS::IAM::Role")["PipelineRole"]); strings.Contains(pr, "SiteBucketName") {
		t.Errorf("the pipeline role still writes the sites: %s", pr)
	}
}

// TestECSFromOutputsStaticSite: cutover deploy finds a static service's
// bucket and distribution among the app template's outputs (the stack is
// the one place both come from), and cutover.yaml's own values win.
func TestECSFromOutputsStaticSite(t *testing.T) {
	cfg := staticBluemed(t)
	e := cfg.Environments["production"]
	e.Platform = config.PlatformECS
	e.ECS = &config.ECS{Region: "eu-west-1", Stack: AppStackName("bluemed", "production")}
	files, err := Templates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{}
	for _, f := range files {
		if f.Name == "app-production" {
			for key := range f.Template.Outputs {
				outputs[key] = "out:" + key
			}
		}
	}
	x, err := ECSFromOutputs(cfg, "production", outputs)
	if err != nil {
		t.Fatal(err)
	}
	if f := x.Services["frontend"]; f.Bucket != "out:ProductionFrontendSiteBucketName" || f.Distribution != "out:ProductionFrontendDistributionId" || f.Service != "" || f.TargetGroups.Blue != "" {
		t.Errorf("frontend %+v", f)
	}
	e.ECS.Services = map[string]*config.ECSService{"frontend": {Distribution: "EOWN"}}
	if x, err = ECSFromOutputs(cfg, "production", outputs); err != nil || x.Services["frontend"].Distribution != "EOWN" || x.Services["frontend"].Bucket != "out:ProductionFrontendSiteBucketName" {
		t.Errorf("cutover.yaml's distribution lost to the stack's: %+v %v", x.Services["frontend"], err)
	}
	delete(outputs, "ProductionFrontendDistributionId")
	if _, err := ECSFromOutputs(cfg, "production", outputs); err == nil || !strings.Contains(err.Error(), "ProductionFrontendDistributionId") {
		t.Errorf("a stack without the distribution's output: %v", err)
	}
}

// Attack: the pipeline's secrets reached every CodeBuild project, the
// publish projects too, which run cutover publish-static only: they get
// none (and their roles may not read them), the build still does.
func TestPublishProjectsGetNoPipelineSecrets(t *testing.T) {
	cfg := staticBluemed(t)
	cfg.Pipeline.Secrets = &config.Secrets{Names: []string{"SLACK_URL"}}
	files, err := Templates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Name != "pipeline" {
			continue
		}
		projects := resourcesOfType(rendered(t, f), "AWS::CodeBuild::Project")
		if _, ok := envVars(projects["BuildProject"])["SLACK_URL"]; !ok {
			t.Error("the build lost the pipeline's secret")
		}
		for _, id := range []string{"PublishStagingFrontendProject", "PublishProductionFrontendProject"} {
			if v, ok := envVars(projects[id])["SLACK_URL"]; ok {
				t.Errorf("%s gets the pipeline's secret SLACK_URL (%v)", id, v)
			}
		}
		return
	}
	t.Fatal("no pipeline template")
}

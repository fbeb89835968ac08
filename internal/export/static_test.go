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
	deploy := jsonOf(resourcesOfType(pipe, "AWS::CodePipeline::Pipeline")["Pipeline"]["Stages"])
	if !strings.Contains(deploy, `"ActionTypeId":{"Category":"Deploy","Owner":"AWS","Provider":"S3","Version":"1"},"Configuration":{"BucketName":{"Fn::ImportValue":"bluemed-ProductionFrontendSiteBucketName"},"CacheControl":"no-cache","Extract":"true"}`) {
		t.Errorf("production does not upload the site to its bucket:\n%s", deploy)
	}
	role := jsonOf(resourcesOfType(pipe, "AWS::IAM::Role")["PipelineRole"])
	if !strings.Contains(role, `"Action":["s3:PutObject"],"Effect":"Allow","Resource":[{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":s3:::",{"Fn::ImportValue":"bluemed-StagingFrontendSiteBucketName"},"/*"]]}`) {
		t.Errorf("pipeline role cannot write the sites: %s", role)
	}
}

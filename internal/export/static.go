package export

import (
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/cloudfront"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/s3"
)

// CloudFront's managed policies (fixed IDs in every account).
const (
	cachingOptimized      = "658327ea-f89d-4fab-a63d-7e88639e58f6" // Managed-CachingOptimized
	securityHeadersPolicy = "67f7725c-6f97-4210-82d7-5512b31e9d03" // Managed-SecurityHeadersPolicy (HSTS, nosniff, frame options)
)

// static says whether a service is the S3 + CloudFront variant
// (services.<name>.static) rather than an ECS service.
func (g *gen) static(name string) bool { return g.cfg.Services[name].Static != nil }

// containers are the services that run as containers on ECS, sorted.
func (g *gen) containers() []string {
	var out []string
	for _, name := range g.cfg.ServiceNames() {
		if !g.static(name) {
			out = append(out, name)
		}
	}
	return out
}

// staticSite adds a static service's site to an environment: a private S3
// bucket that only this distribution reads (origin access control, SigV4),
// a CloudFront distribution on the service's own domain with HTTPS only
// (plain HTTP is redirected, TLS 1.2 or newer, the certificate from
// us-east-1 as CloudFront requires) and, with static.spa, index.html for
// the paths that are client-side routes. The pipeline's deploy stage
// publishes the built files with cutover publish-static (publishSpec).
func (g *gen) staticSite(t *cloudformation.Template, env, name string) {
	r := t.Resources
	id := logicalID(name)
	s := g.cfg.Services[name]
	t.Parameters[id+"DomainName"] = cloudformation.Parameter{Type: "String",
		Description:    cloudformation.String("The domain the static " + name + " site is served at (a CNAME or alias to the distribution's domain name, an output of this stack)"),
		AllowedPattern: cloudformation.String(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)}
	t.Parameters[id+"CertificateArn"] = cloudformation.Parameter{Type: "String",
		Description:    cloudformation.String("ARN of the ACM certificate of " + id + "DomainName, in us-east-1 (CloudFront reads certificates from there only)"),
		AllowedPattern: cloudformation.String("^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/.+$")}

	bucket := privateBucket("", g.tags("dev.cutover.environment", env, "dev.cutover.service", name),
		"The bucket holds the public site's files, written only by the pipeline; CloudFront's standard logs record the requests.")
	bucket.AWSCloudFormationMetadata = skip(
		"CKV_AWS_18", "The bucket holds the public site's files, written only by the pipeline (CloudTrail records it); CloudFront serves every read.",
		"CKV_AWS_145", "The files are the public site. SSE-S3 encrypts them at rest; SSE-KMS would need a key policy naming this distribution, which a shared key cannot.")
	r[id+"SiteBucket"] = bucket
	r[id+"OriginAccessControl"] = &cloudfront.OriginAccessControl{OriginAccessControlConfig: &cloudfront.OriginAccessControl_OriginAccessControlConfig{
		Name: g.project + "-" + env + "-" + name, OriginAccessControlOriginType: "s3", SigningBehavior: "always", SigningProtocol: "sigv4",
		Description: cloudformation.String("CloudFront reads the " + name + " site's bucket, signed")}}

	var errors []cloudfront.Distribution_CustomErrorResponse
	if s.Static.SPA {
		// Without a file at the path S3 answers 403 (the distribution may not
		// list the bucket): a client-side route gets index.html.
		for _, code := range []int{403, 404} {
			errors = append(errors, cloudfront.Distribution_CustomErrorResponse{ErrorCode: code, ResponseCode: cloudformation.Int(200),
				ResponsePagePath: cloudformation.String("/index.html"), ErrorCachingMinTTL: cloudformation.Float64(10)})
		}
	}
	r[id+"Distribution"] = &cloudfront.Distribution{
		DistributionConfig: &cloudfront.Distribution_DistributionConfig{
			Enabled: true, Comment: cloudformation.String(g.project + " " + env + " " + name),
			Aliases: []string{cloudformation.Ref(id + "DomainName")}, DefaultRootObject: cloudformation.String("index.html"),
			HttpVersion: cloudformation.String("http2and3"), PriceClass: cloudformation.String("PriceClass_100"),
			Origins: []cloudfront.Distribution_Origin{{Id: "site", DomainName: cloudformation.GetAtt(id+"SiteBucket", "RegionalDomainName"),
				S3OriginConfig:        &cloudfront.Distribution_S3OriginConfig{OriginAccessIdentity: cloudformation.String("")},
				OriginAccessControlId: cloudformation.GetAttPtr(id+"OriginAccessControl", "Id")}},
			DefaultCacheBehavior: &cloudfront.Distribution_DefaultCacheBehavior{TargetOriginId: "site", ViewerProtocolPolicy: "redirect-to-https",
				AllowedMethods: []string{"GET", "HEAD"}, CachedMethods: []string{"GET", "HEAD"}, Compress: cloudformation.Bool(true),
				CachePolicyId: cloudformation.String(cachingOptimized), ResponseHeadersPolicyId: cloudformation.String(securityHeadersPolicy)},
			CustomErrorResponses: errors,
			ViewerCertificate: &cloudfront.Distribution_ViewerCertificate{AcmCertificateArn: cloudformation.RefPtr(id + "CertificateArn"),
				SslSupportMethod: cloudformation.String("sni-only"), MinimumProtocolVersion: cloudformation.String("TLSv1.2_2021")},
		},
		Tags: g.tags("dev.cutover.environment", env, "dev.cutover.service", name),
		AWSCloudFormationMetadata: skip(
			"CKV_AWS_68", "A static site of public files with no forms or API behind it; attach a WAF web ACL (WebACLId) per account if required.",
			"CKV_AWS_86", "Standard logs need a log bucket with ACLs enabled, which this template's buckets refuse (BucketOwnerEnforced); CloudFront's metrics are on.",
			"CKV_AWS_310", "One origin: the bucket is regional and highly available; a failover origin would be a second copy of the site.",
			"CKV_AWS_374", "The site is public in every country."),
	}
	distributionArn := sub("arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${" + id + "Distribution}")
	r[id+"SiteBucketPolicy"] = &s3.BucketPolicy{Bucket: cloudformation.Ref(id + "SiteBucket"), PolicyDocument: policy(
		map[string]any{"Sid": "CloudFrontReads", "Effect": "Allow", "Principal": map[string]any{"Service": "cloudfront.amazonaws.com"},
			"Action": "s3:GetObject", "Resource": sub("${" + id + "SiteBucket.Arn}/*"),
			"Condition": map[string]any{"StringEquals": map[string]any{"AWS:SourceArn": distributionArn}}},
		map[string]any{"Sid": "TLSOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
			"Resource":  []string{sub("${" + id + "SiteBucket.Arn}"), sub("${" + id + "SiteBucket.Arn}/*")},
			"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}}},
	)}
	es := logicalID(env, name)
	g.output(t, es+"SiteBucketName", cloudformation.Ref(id+"SiteBucket"))
	g.output(t, es+"DistributionId", cloudformation.Ref(id+"Distribution"))
	t.Outputs[es+"DistributionDomainName"] = cloudformation.Output{Value: cloudformation.GetAtt(id+"Distribution", "DomainName"),
		Description: cloudformation.String("Point " + id + "DomainName here (CNAME, or a Route 53 alias)")}
}

// statics are the static services, sorted.
func (g *gen) statics() []string {
	var out []string
	for _, name := range g.cfg.ServiceNames() {
		if g.static(name) {
			out = append(out, name)
		}
	}
	return out
}

// publishSpec publishes a static service's built files (the primary input,
// its build artifact) with cutover publish-static, the code cutover deploy
// runs: each release under releases/<digest>/ with its own Content-Type
// and Cache-Control, then the distribution's origin path moved to it and
// the cache invalidated. Nothing is overwritten, so cutover rollback (or
// a run of an earlier commit) points the origin back.
func (g *gen) publishSpec() string {
	return buildspec([]string{`cutover publish-static --service "$SERVICE" --bucket "$BUCKET" --distribution "$DISTRIBUTION" "$CODEBUILD_SRC_DIR"`}, nil)
}

// publishRoleOf is the role of publish project id (Publish + ENV + SERVICE).
func (g *gen) publishRoleOf(id string) string {
	for _, env := range g.envOrder() {
		for _, svc := range g.statics() {
			if id == "Publish"+logicalID(env, svc) {
				return "Publish" + logicalID(env) + "Role"
			}
		}
	}
	return ""
}

// publishRoles are the roles of the publish projects, one per environment:
// write the build logs, read the build artifacts, add objects to that
// environment's site buckets (never delete), and move and invalidate its
// distributions. Nothing else: no other environment's sites (a staging
// publish cannot touch production), no pipeline secrets and no source
// connection (the projects read the build artifact and run cutover
// publish-static only).
func (g *gen) publishRoles(t *cloudformation.Template, logs map[string]any) {
	for _, env := range g.envOrder() {
		var buckets, objects, distributions []any
		for _, svc := range g.statics() {
			es := logicalID(env, svc)
			bucket := []any{"arn:", cloudformation.Ref("AWS::Partition"), ":s3:::", g.imp(es + "SiteBucketName")}
			buckets = append(buckets, cloudformation.Join("", bucket))
			objects = append(objects, cloudformation.Join("", append(bucket, "/*")))
			distributions = append(distributions, cloudformation.Join("", []any{"arn:", cloudformation.Ref("AWS::Partition"), ":cloudfront::",
				cloudformation.Ref("AWS::AccountId"), ":distribution/", g.imp(es + "DistributionId")}))
		}
		if len(buckets) == 0 {
			return
		}
		t.Resources["Publish"+logicalID(env)+"Role"] = &iam.Role{
			AssumeRolePolicyDocument: assumeRole("codebuild.amazonaws.com"),
			Policies: []iam.Role_Policy{{PolicyName: "publish", PolicyDocument: policy(logs,
				allow([]string{"s3:GetObject", "s3:GetObjectVersion"}, sub("${ArtifactsBucket.Arn}/*")),
				allow([]string{"kms:Decrypt"}, g.imp("ArtifactsKeyArn")),
				// ListBucket makes a missing manifest a 404, not a 403.
				allow([]string{"s3:ListBucket"}, buckets...),
				allow([]string{"s3:GetObject", "s3:PutObject"}, objects...),
				allow([]string{"cloudfront:GetDistributionConfig", "cloudfront:UpdateDistribution", "cloudfront:CreateInvalidation"}, distributions...),
			)}},
			Tags: g.tags(),
		}
	}
}

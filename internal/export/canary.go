package export

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/cloudwatch"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/s3"
	"github.com/awslabs/goformation/v7/cloudformation/synthetics"
	"github.com/awslabs/goformation/v7/cloudformation/tags"
)

// canaryRuntime is the CloudWatch Synthetics runtime of the canaries.
const canaryRuntime = "syn-nodejs-puppeteer-9.1"

// canaryScript fetches one URL over HTTPS and fails on a network error, a
// timeout or a status outside 200-399. URL is substituted by Fn::Sub with
// a JSON (so JavaScript) string literal: a quote in a path from cutover.yaml
// stays inside the string.
const canaryScript = `const https = require('https');
const url = ${URL};
exports.handler = async () => {
  await new Promise((resolve, reject) => {
    const req = https.get(url, { timeout: 10000 }, (res) => {
      res.resume();
      if (res.statusCode >= 200 && res.statusCode < 400) resolve();
      else reject(new Error(url + ' answered ' + res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error(url + ' did not answer within 10s')));
    req.on('error', reject);
  });
};
`

// privateBucket is an S3 bucket no one outside the account reaches:
// public access blocked, ACLs off, versioned, encrypted with a KMS key.
// Without a key (kmsKeyArn ""), S3-managed keys (SSE-S3) encrypt it.
func privateBucket(kmsKeyArn string, tags []tags.Tag, accessLogsReason string) *s3.Bucket {
	enc := &s3.Bucket_ServerSideEncryptionByDefault{SSEAlgorithm: "AES256"}
	if kmsKeyArn != "" {
		enc = &s3.Bucket_ServerSideEncryptionByDefault{SSEAlgorithm: "aws:kms", KMSMasterKeyID: cloudformation.String(kmsKeyArn)}
	}
	return &s3.Bucket{
		BucketEncryption: &s3.Bucket_BucketEncryption{ServerSideEncryptionConfiguration: []s3.Bucket_ServerSideEncryptionRule{{BucketKeyEnabled: cloudformation.Bool(true),
			ServerSideEncryptionByDefault: enc}}},
		VersioningConfiguration: &s3.Bucket_VersioningConfiguration{Status: "Enabled"},
		PublicAccessBlockConfiguration: &s3.Bucket_PublicAccessBlockConfiguration{BlockPublicAcls: cloudformation.Bool(true), BlockPublicPolicy: cloudformation.Bool(true),
			IgnorePublicAcls: cloudformation.Bool(true), RestrictPublicBuckets: cloudformation.Bool(true)},
		OwnershipControls:         &s3.Bucket_OwnershipControls{Rules: []s3.Bucket_OwnershipControlsRule{{ObjectOwnership: cloudformation.String("BucketOwnerEnforced")}}},
		Tags:                      tags,
		AWSCloudFormationMetadata: skip("CKV_AWS_18", accessLogsReason),
	}
}

// canaryName is a Synthetics canary name (at most 21 of [0-9a-z_-], unique
// in the account and region): short environment and service names and a
// hash of project, environment and service.
func canaryName(project, env, service string) string {
	clean := func(s string, n int) string {
		s = strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_':
				return r
			case r >= 'A' && r <= 'Z':
				return r + 'a' - 'A'
			}
			return '-'
		}, s)
		return s[:min(len(s), n)]
	}
	h := sha256.Sum256([]byte(project + "/" + env + "/" + service))
	return clean(env, 5) + "-" + clean(service, 8) + "-" + hex.EncodeToString(h[:3])
}

// canaries adds the environment's synthetic checks (seed 000): one canary
// per routed service that GETs its health path over HTTPS at the
// environment's domain (or the route's host) every 5 minutes, from outside
// the VPC as a user would, with an alarm on the alarm topic when a run
// fails. For bluemed that is the API's /api/health and the SPA's root.
func (g *gen) canaries(t *cloudformation.Template, env string) {
	r := t.Resources
	prefix := g.project + "-" + env
	r["CanaryBucket"] = privateBucket(g.imp("ArtifactsKeyArn"), g.tags("dev.cutover.environment", env),
		"The bucket holds the canaries' own run artifacts, written only by Synthetics and expired after 31 days; server access logs would need a second bucket.")
	r["CanaryBucket"].(*s3.Bucket).LifecycleConfiguration = &s3.Bucket_LifecycleConfiguration{Rules: []s3.Bucket_Rule{{Id: cloudformation.String("expire-runs"), Status: "Enabled",
		ExpirationInDays: cloudformation.Int(31), NoncurrentVersionExpiration: &s3.Bucket_NoncurrentVersionExpiration{NoncurrentDays: 1},
		AbortIncompleteMultipartUpload: &s3.Bucket_AbortIncompleteMultipartUpload{DaysAfterInitiation: 1}}}}
	r["CanaryRole"] = &iam.Role{
		AssumeRolePolicyDocument: assumeRole("lambda.amazonaws.com"),
		Description:              cloudformation.String("the synthetic canaries of " + prefix + ": write their results and metrics"),
		Policies: []iam.Role_Policy{{PolicyName: "canary", PolicyDocument: policy(
			allow([]string{"s3:PutObject"}, sub("${CanaryBucket.Arn}/*")),
			allow([]string{"s3:GetBucketLocation"}, sub("${CanaryBucket.Arn}")),
			allow([]string{"kms:GenerateDataKey", "kms:Decrypt"}, g.imp("ArtifactsKeyArn")),
			allow([]string{"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}, sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/cwsyn-*")),
			// Synthetics lists buckets and puts metrics with calls that take no resource ARN.
			allow([]string{"s3:ListAllMyBuckets"}, "*"),
			map[string]any{"Effect": "Allow", "Action": []string{"cloudwatch:PutMetricData"}, "Resource": "*",
				"Condition": map[string]any{"StringEquals": map[string]any{"cloudwatch:namespace": "CloudWatchSynthetics"}}},
		)}},
		Tags: g.tags("dev.cutover.environment", env),
	}
	for _, name := range g.cfg.ServiceNames() {
		s := g.cfg.Services[name]
		if s.Route.Host == "" && s.Route.PathPrefix == "" && len(g.cfg.Services) > 1 {
			continue // not routed: nothing outside reaches it
		}
		// What comes from cutover.yaml is escaped for Fn::Sub ("${" is "${!").
		esc := func(v string) string { return strings.ReplaceAll(v, "${", "${!") }
		host := "${DomainName}"
		switch {
		case g.static(name):
			host = "${" + logicalID(name) + "DomainName}"
		case s.Route.Host != "":
			host = esc(s.Route.Host)
		}
		url := "https://" + host + esc(cmp.Or(s.Health.Path, "/"))
		literal, _ := json.Marshal(url) // a string: cannot fail
		id := logicalID(name)
		canary := canaryName(g.project, env, name)
		r[id+"Canary"] = withProperties(&synthetics.Canary{
			Name: canary, RuntimeVersion: canaryRuntime, ExecutionRoleArn: cloudformation.GetAtt("CanaryRole", "Arn"),
			Code:                     &synthetics.Canary_Code{Handler: "index.handler", Script: cloudformation.String(cloudformation.SubVars(canaryScript, map[string]any{"URL": sub(string(literal))}))},
			Schedule:                 &synthetics.Canary_Schedule{Expression: "rate(5 minutes)"},
			RunConfig:                &synthetics.Canary_RunConfig{TimeoutInSeconds: cloudformation.Int(60)},
			ArtifactS3Location:       sub("s3://${CanaryBucket}/" + name),
			ArtifactConfig:           &synthetics.Canary_ArtifactConfig{S3Encryption: &synthetics.Canary_S3Encryption{EncryptionMode: cloudformation.String("SSE_KMS"), KmsKeyArn: cloudformation.String(g.imp("ArtifactsKeyArn"))}},
			StartCanaryAfterCreation: cloudformation.Bool(true),
			SuccessRetentionPeriod:   cloudformation.Int(31), FailureRetentionPeriod: cloudformation.Int(31),
			Tags: g.tags("dev.cutover.environment", env, "dev.cutover.service", name),
		}, func(p map[string]any) {
			// Deleting the canary (the stack) deletes the Lambda function
			// and layer Synthetics made for it (goformation lacks the property).
			p["ProvisionedResourceCleanup"] = "AUTOMATIC"
		})
		r[id+"CanaryAlarm"] = &cloudwatch.Alarm{
			AlarmName:        cloudformation.String(prefix + "-" + name + "-canary"),
			AlarmDescription: cloudformation.String("the synthetic check of " + name + " (HTTPS GET of " + cmp.Or(s.Health.Path, "/") + " at the environment's domain) failed in two runs in a row"),
			Namespace:        cloudformation.String("CloudWatchSynthetics"), MetricName: cloudformation.String("SuccessPercent"),
			Dimensions: []cloudwatch.Alarm_Dimension{{Name: "CanaryName", Value: canary}},
			Statistic:  cloudformation.String("Average"), Period: cloudformation.Int(300), EvaluationPeriods: 2, DatapointsToAlarm: cloudformation.Int(2),
			Threshold: cloudformation.Float64(100), ComparisonOperator: "LessThanThreshold", TreatMissingData: cloudformation.String("notBreaching"),
			AlarmActions: []string{cloudformation.Ref("AlarmTopic")}, OKActions: []string{cloudformation.Ref("AlarmTopic")},
			AWSCloudFormationDependsOn: []string{id + "Canary"},
		}
	}
}

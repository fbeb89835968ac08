package export

import (
	"encoding/json"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/ecr"
	"github.com/awslabs/goformation/v7/cloudformation/kms"
)

// vpcCIDR is the shared VPC's range.
const vpcCIDR = "10.0.0.0/16"

// interfaceEndpoints are the AWS services Fargate tasks in private subnets
// reach without a NAT gateway: image pulls (ECR API and registry), logs, and
// the secrets referenced by task definitions. S3 (ECR layers) is a gateway
// endpoint.
var interfaceEndpoints = []string{"ecr.api", "ecr.dkr", "logs", "ssm", "secretsmanager"}

// shared is the template every environment builds on: the network, the image
// repositories and the KMS keys.
func (g *gen) shared() *cloudformation.Template {
	t := cloudformation.NewTemplate()
	t.Description = "cutover " + g.project + ": VPC over two AZs (public subnets for the load balancers, private subnets for tasks, VPC endpoints instead of NAT), ECR repositories and KMS keys"
	r := t.Resources

	public, private := g.network(t, "", vpcCIDR, func(kind string, az int) string {
		return map[string][]string{"Public": {"10.0.0.0/22", "10.0.4.0/22"}, "Private": {"10.0.16.0/20", "10.0.32.0/20"}}[kind][az]
	})

	r["ArtifactsKey"] = g.key("pipeline artifacts and images", nil)
	r["LogsKey"] = g.key("logs and notifications", []map[string]any{
		{"Sid": "CloudWatchLogs", "Effect": "Allow", "Principal": map[string]any{"Service": sub("logs.${AWS::Region}.amazonaws.com")},
			"Action":    []string{"kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"},
			"Resource":  "*",
			"Condition": map[string]any{"ArnLike": map[string]any{"kms:EncryptionContext:aws:logs:arn": sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/cutover/" + g.project + "/*")}}},
		{"Sid": "AlarmAndNotificationTopics", "Effect": "Allow",
			"Principal": map[string]any{"Service": []string{"cloudwatch.amazonaws.com", "codestar-notifications.amazonaws.com"}},
			"Action":    []string{"kms:Decrypt", "kms:GenerateDataKey*"}, "Resource": "*"},
	})

	// The first images (tag "initial", the app stacks' ImageTag default)
	// stay: the stacks' task definitions run them, and a stack update that
	// changes a rolling or ECS-native service's task definition deploys
	// them again. ECR never expires an image that a rule of higher
	// priority selects by its tag with a rule of lower priority, so rule 1
	// selects them (one image per repository: the tags are immutable).
	lifecycle, _ := json.Marshal(map[string]any{"rules": []map[string]any{{
		"rulePriority": 1, "description": "keep the bootstrap image (tag initial)",
		"selection": map[string]any{"tagStatus": "tagged", "tagPrefixList": []string{"initial"}, "countType": "imageCountMoreThan", "countNumber": 1},
		"action":    map[string]any{"type": "expire"},
	}, {
		"rulePriority": 2, "description": "keep the last 50 images",
		"selection": map[string]any{"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 50},
		"action":    map[string]any{"type": "expire"},
	}}})
	for _, svc := range g.containers() {
		id := "Repository" + logicalID(svc)
		r[id] = &ecr.Repository{
			RepositoryName:             cloudformation.String(g.project + "/" + svc),
			ImageTagMutability:         cloudformation.String("IMMUTABLE"),
			ImageScanningConfiguration: &ecr.Repository_ImageScanningConfiguration{ScanOnPush: cloudformation.Bool(true)},
			EncryptionConfiguration:    &ecr.Repository_EncryptionConfiguration{EncryptionType: "KMS", KmsKey: cloudformation.GetAttPtr("ArtifactsKey", "Arn")},
			LifecyclePolicy:            &ecr.Repository_LifecyclePolicy{LifecyclePolicyText: cloudformation.String(string(lifecycle))},
			Tags:                       g.tags("dev.cutover.service", svc),
		}
		g.output(t, id+"Arn", sub("arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${"+id+"}"))
	}

	g.notifier(t)

	g.output(t, "VpcId", cloudformation.Ref("Vpc"))
	g.output(t, "PublicSubnets", cloudformation.Join(",", public))
	g.output(t, "PrivateSubnets", cloudformation.Join(",", private))
	// Exported values are built from Refs rather than Fn::GetAtt: the same
	// ARNs, and moto's CloudFormation can resolve them before it creates
	// the resources (it validates exports first).
	g.output(t, "ArtifactsKeyArn", keyArn("ArtifactsKey"))
	g.output(t, "LogsKeyArn", keyArn("LogsKey"))
	return t
}

// key is a customer-managed KMS key with rotation; the account root manages
// it (the documented default key policy, without which IAM policies cannot
// grant use of the key), plus the given service statements.
func (g *gen) key(purpose string, statements []map[string]any) *kms.Key {
	st := []map[string]any{{
		"Sid": "AccountAdministers", "Effect": "Allow",
		"Principal": map[string]any{"AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
		"Action":    "kms:*", "Resource": "*",
	}}
	return &kms.Key{
		Description:       cloudformation.String("cutover " + g.project + ": " + purpose),
		EnableKeyRotation: cloudformation.Bool(true),
		KeyPolicy:         policy(append(st, statements...)...),
		// No Tags: moto's CloudFormation fails on tagged KMS keys (it expects
		// the KMS API's TagKey/TagValue shape), and the description names the project.
	}
}

func keyArn(id string) string {
	return sub("arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/${" + id + "}")
}

func roleArn(id string) string {
	return sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${" + id + "}")
}

package export

import (
	"encoding/json"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/ec2"
	"github.com/awslabs/goformation/v7/cloudformation/ecr"
	"github.com/awslabs/goformation/v7/cloudformation/kms"
)

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

	r["Vpc"] = &ec2.VPC{CidrBlock: cloudformation.String(vpcCIDR), EnableDnsHostnames: cloudformation.Bool(true), EnableDnsSupport: cloudformation.Bool(true), Tags: g.tags("Name", g.project)}
	r["InternetGateway"] = &ec2.InternetGateway{Tags: g.tags()}
	r["InternetGatewayAttachment"] = &ec2.VPCGatewayAttachment{VpcId: cloudformation.Ref("Vpc"), InternetGatewayId: cloudformation.RefPtr("InternetGateway")}
	r["PublicRouteTable"] = &ec2.RouteTable{VpcId: cloudformation.Ref("Vpc"), Tags: g.tags("Name", g.project+"-public")}
	r["PublicDefaultRoute"] = &ec2.Route{RouteTableId: cloudformation.Ref("PublicRouteTable"), DestinationCidrBlock: cloudformation.String("0.0.0.0/0"), GatewayId: cloudformation.RefPtr("InternetGateway"),
		AWSCloudFormationDependsOn: []string{"InternetGatewayAttachment"}}
	r["PrivateRouteTable"] = &ec2.RouteTable{VpcId: cloudformation.Ref("Vpc"), Tags: g.tags("Name", g.project+"-private")}

	var public, private []string
	for az := range 2 {
		for _, kind := range []string{"Public", "Private"} {
			id := kind + "Subnet" + string(rune('A'+az))
			cidr := map[string][]string{"Public": {"10.0.0.0/22", "10.0.4.0/22"}, "Private": {"10.0.16.0/20", "10.0.32.0/20"}}[kind][az]
			r[id] = &ec2.Subnet{VpcId: cloudformation.Ref("Vpc"), CidrBlock: cloudformation.String(cidr),
				AvailabilityZone: cloudformation.SelectPtr(az, cloudformation.GetAZs("")),
				Tags:             g.tags("Name", g.project+"-"+id)}
			r[id+"Routes"] = &ec2.SubnetRouteTableAssociation{SubnetId: cloudformation.Ref(id), RouteTableId: cloudformation.Ref(kind + "RouteTable")}
			if kind == "Public" {
				public = append(public, cloudformation.Ref(id))
			} else {
				private = append(private, cloudformation.Ref(id))
			}
		}
	}

	r["EndpointSecurityGroup"] = &ec2.SecurityGroup{
		GroupDescription: "HTTPS from inside the VPC to the AWS service endpoints",
		VpcId:            cloudformation.RefPtr("Vpc"),
		SecurityGroupIngress: []ec2.SecurityGroup_Ingress{{IpProtocol: "tcp", FromPort: cloudformation.Int(443), ToPort: cloudformation.Int(443),
			CidrIp: cloudformation.String(vpcCIDR), Description: cloudformation.String("HTTPS from tasks in the VPC")}},
		SecurityGroupEgress: []ec2.SecurityGroup_Egress{{IpProtocol: "tcp", FromPort: cloudformation.Int(443), ToPort: cloudformation.Int(443),
			CidrIp: cloudformation.String(vpcCIDR), Description: cloudformation.String("responses stay inside the VPC")}},
		Tags: g.tags(),
	}
	for _, svc := range interfaceEndpoints {
		r["Endpoint"+logicalID(svc)] = &ec2.VPCEndpoint{
			VpcId: cloudformation.Ref("Vpc"), ServiceName: sub("com.amazonaws.${AWS::Region}." + svc),
			VpcEndpointType: cloudformation.String("Interface"), PrivateDnsEnabled: cloudformation.Bool(true),
			SubnetIds: private, SecurityGroupIds: []string{cloudformation.Ref("EndpointSecurityGroup")},
		}
	}
	r["EndpointS3"] = &ec2.VPCEndpoint{VpcId: cloudformation.Ref("Vpc"), ServiceName: sub("com.amazonaws.${AWS::Region}.s3"),
		VpcEndpointType: cloudformation.String("Gateway"), RouteTableIds: []string{cloudformation.Ref("PrivateRouteTable")}}

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

	lifecycle, _ := json.Marshal(map[string]any{"rules": []map[string]any{{
		"rulePriority": 1, "description": "keep the last 50 images",
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

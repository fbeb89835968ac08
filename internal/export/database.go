package export

import (
	"strings"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/ec2"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/policies"
	"github.com/awslabs/goformation/v7/cloudformation/rds"
)

const (
	databasePort      = 5432
	hasDatabase       = "HasDatabase"
	databaseParameter = "Database"
)

// production says whether an environment is the end of a promotion path
// (no environment promotes from it): production in the seeds, the one whose
// data is kept from deletion.
func (g *gen) production(env string) bool {
	for _, e := range g.cfg.Environments {
		if e.PromoteFrom == env {
			return false
		}
	}
	return true
}

// database adds the optional PostgreSQL database of an environment (seed
// 002): created only when the stack's Database parameter is "postgres", in
// the private subnets, reachable only from the environment's tasks, never
// publicly accessible, storage and Performance Insights encrypted with the
// artifacts key, the master password generated and kept by RDS in Secrets
// Manager (ManageMasterUserPassword: it is in no template, parameter or
// output), multi-AZ with deletion protection and a final snapshot in
// production.
func (g *gen) database(t *cloudformation.Template, env string) {
	t.Parameters[databaseParameter] = cloudformation.Parameter{Type: "String", Default: "none", AllowedValues: []any{"none", "postgres"},
		Description: cloudformation.String("postgres adds an RDS PostgreSQL database in the private subnets (RDS generates and keeps its credentials: see the outputs); none (the default) adds nothing")}
	t.Parameters["DatabaseInstanceClass"] = cloudformation.Parameter{Type: "String", Default: "db.t4g.micro", AllowedPattern: cloudformation.String(`^db\.[a-z0-9]+\.[a-z0-9]+$`),
		Description: cloudformation.String("RDS instance class of the database")}
	// Conditions and Fn::If are goformation's encoded intrinsics: its
	// renderer would evaluate plain maps (to false and null).
	t.Conditions[hasDatabase] = cloudformation.Not([]string{cloudformation.Equals(cloudformation.Ref(databaseParameter), "none")})
	r := t.Resources
	prod := g.production(env)
	tagsOf := g.tags("dev.cutover.environment", env)

	r["DatabaseSubnetGroup"] = &rds.DBSubnetGroup{DBSubnetGroupDescription: "private subnets of the " + g.project + "-" + env + " database",
		SubnetIds: g.privateSubnets(), Tags: tagsOf, AWSCloudFormationCondition: hasDatabase}
	r["DatabaseSecurityGroup"] = &ec2.SecurityGroup{
		GroupDescription: "the " + g.project + "-" + env + " database: PostgreSQL from the tasks of the environment only",
		VpcId:            cloudformation.String(g.vpcID()),
		SecurityGroupIngress: []ec2.SecurityGroup_Ingress{{IpProtocol: "tcp", FromPort: cloudformation.Int(databasePort), ToPort: cloudformation.Int(databasePort),
			SourceSecurityGroupId: cloudformation.RefPtr("TaskSecurityGroup"), Description: cloudformation.String("PostgreSQL from the tasks")}},
		// A database opens no connections: the only egress rule allows nothing routable.
		SecurityGroupEgress: []ec2.SecurityGroup_Egress{{IpProtocol: "icmp", FromPort: cloudformation.Int(-1), ToPort: cloudformation.Int(-1),
			CidrIp: cloudformation.String("127.0.0.1/32"), Description: cloudformation.String("no egress")}},
		Tags: tagsOf, AWSCloudFormationCondition: hasDatabase,
	}
	r["TaskToDatabase"] = &ec2.SecurityGroupEgress{GroupId: cloudformation.Ref("TaskSecurityGroup"), IpProtocol: "tcp",
		FromPort: cloudformation.Int(databasePort), ToPort: cloudformation.Int(databasePort), DestinationSecurityGroupId: cloudformation.RefPtr("DatabaseSecurityGroup"),
		Description: cloudformation.String("tasks to the database"), AWSCloudFormationCondition: hasDatabase}

	backups := 7
	if prod {
		backups = 14
	}
	keep := policies.DeletionPolicy("Snapshot")
	r["DatabaseInstance"] = &rds.DBInstance{
		Engine: cloudformation.String("postgres"), DBInstanceClass: cloudformation.RefPtr("DatabaseInstanceClass"),
		DBName:           cloudformation.String(dbName(g.project)),
		AllocatedStorage: cloudformation.String("20"), MaxAllocatedStorage: cloudformation.Int(100), StorageType: cloudformation.String("gp3"),
		StorageEncrypted: cloudformation.Bool(true), KmsKeyId: cloudformation.String(g.imp("ArtifactsKeyArn")),
		MasterUsername: cloudformation.String("cutover"), ManageMasterUserPassword: cloudformation.Bool(true),
		MasterUserSecret:   &rds.DBInstance_MasterUserSecret{KmsKeyId: cloudformation.String(g.imp("ArtifactsKeyArn"))},
		DBSubnetGroupName:  cloudformation.RefPtr("DatabaseSubnetGroup"),
		VPCSecurityGroups:  []string{cloudformation.Ref("DatabaseSecurityGroup")},
		PubliclyAccessible: cloudformation.Bool(false),
		MultiAZ:            cloudformation.Bool(prod), DeletionProtection: cloudformation.Bool(prod),
		BackupRetentionPeriod: cloudformation.Int(backups), CopyTagsToSnapshot: cloudformation.Bool(true),
		AutoMinorVersionUpgrade: cloudformation.Bool(true), EnableIAMDatabaseAuthentication: cloudformation.Bool(true),
		EnableCloudwatchLogsExports: []string{"postgresql", "upgrade"},
		EnablePerformanceInsights:   cloudformation.Bool(true), PerformanceInsightsKMSKeyId: cloudformation.String(g.imp("ArtifactsKeyArn")),
		Tags:                            tagsOf,
		AWSCloudFormationCondition:      hasDatabase,
		AWSCloudFormationDeletionPolicy: keep, AWSCloudFormationUpdateReplacePolicy: policies.UpdateReplacePolicy(keep),
		AWSCloudFormationMetadata: skip("CKV_AWS_118", "Enhanced monitoring needs a monitoring role and costs per instance; Performance Insights and the exported PostgreSQL logs are on. Set MonitoringInterval per account if required."),
	}
	// Not exported: no other stack needs them. (The secret's ARN is an
	// attribute moto's CloudFormation refuses, so it is not an output.)
	cond := cloudformation.String(hasDatabase)
	t.Outputs[logicalID(env)+"DatabaseEndpoint"] = cloudformation.Output{Condition: cond, Value: cloudformation.GetAtt("DatabaseInstance", "Endpoint.Address"),
		Description: cloudformation.String("Host name of the database (port 5432)")}
	t.Outputs[logicalID(env)+"DatabaseInstance"] = cloudformation.Output{Condition: cond, Value: cloudformation.Ref("DatabaseInstance"),
		Description: cloudformation.String("The database's identifier; its credentials' secret (JSON: username, password) is aws rds describe-db-instances --db-instance-identifier ID --query 'DBInstances[0].MasterUserSecret.SecretArn'")}

	// The tasks read the credentials through the execution role (task
	// definition secrets), only when there is a database: the secret RDS
	// manages for this instance (named rds!db-..., tagged with the
	// instance's ARN by RDS).
	role := r["ExecutionRole"].(*iam.Role)
	doc := role.Policies[0].PolicyDocument.(map[string]any)
	statements := doc["Statement"].([]map[string]any)
	list := make([]any, 0, len(statements)+1)
	for _, st := range statements {
		list = append(list, st)
	}
	doc["Statement"] = append(list, cloudformation.If(hasDatabase,
		map[string]any{"Effect": "Allow", "Action": []string{"secretsmanager:GetSecretValue"},
			"Resource":  sub("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:rds!db-*"),
			"Condition": map[string]any{"StringEquals": map[string]any{"aws:ResourceTag/aws:rds:primaryDBInstanceArn": sub("arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:${DatabaseInstance}")}}},
		cloudformation.Ref("AWS::NoValue")))
}

// dbName is the database's name: letters and digits, starting with a letter.
func dbName(project string) string {
	var b strings.Builder
	for _, r := range project {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' && b.Len() > 0 {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "app"
	}
	return b.String()[:min(b.Len(), 63)]
}

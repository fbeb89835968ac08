package export

import (
	"fmt"
	"strings"
	"time"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/codebuild"
	"github.com/awslabs/goformation/v7/cloudformation/codedeploy"
	"github.com/awslabs/goformation/v7/cloudformation/codestarconnections"
	"github.com/awslabs/goformation/v7/cloudformation/codestarnotifications"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/logs"
	"github.com/awslabs/goformation/v7/cloudformation/sns"
	"github.com/cutoverdev/cutover/internal/config"
)

// codeDeployConfigs maps cutover's traffic names to CodeDeploy's predefined
// ECS deployment configurations.
var codeDeployConfigs = map[string]string{
	config.TrafficAllAtOnce:                    "CodeDeployDefault.ECSAllAtOnce",
	config.TrafficCanary10Percent5Minutes:      "CodeDeployDefault.ECSCanary10Percent5Minutes",
	config.TrafficCanary10Percent15Minutes:     "CodeDeployDefault.ECSCanary10Percent15Minutes",
	config.TrafficLinear10PercentEvery1Minute:  "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
	config.TrafficLinear10PercentEvery3Minutes: "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
}

// pipeline is the CodePipeline V2 from a push to production, its CodeBuild
// projects, the CodeDeploy application and the notifications.
func (g *gen) pipeline() *cloudformation.Template {
	t := cloudformation.NewTemplate()
	t.Description = "cutover " + g.project + ": CodePipeline V2 (source, build, test, integration, deploy per environment, approval), CodeBuild, CodeDeploy blue/green, notifications"
	t.Parameters["RepositoryId"] = cloudformation.Parameter{Type: "String", Description: cloudformation.String("The source repository as owner/name"), AllowedPattern: cloudformation.String("^[^/]+/[^/]+$")}
	t.Parameters["CutoverDownloadUrl"] = cloudformation.Parameter{Type: "String", Description: cloudformation.String("HTTPS URL of the linux/amd64 cutover binary the build projects run"), AllowedPattern: cloudformation.String("^https://.+$")}
	t.Parameters["CutoverSha256"] = cloudformation.Parameter{Type: "String", Description: cloudformation.String("SHA-256 (hex) of the binary at CutoverDownloadUrl: the builds refuse any other file"), AllowedPattern: cloudformation.String("^[0-9a-f]{64}$")}
	r := t.Resources
	name := g.project

	r["ArtifactsBucket"] = privateBucket(g.imp("ArtifactsKeyArn"), g.tags(),
		"Pipeline artifacts are written and read only by CodePipeline and CodeBuild, whose calls CloudTrail records; server access logs would need a second bucket.")
	r["Connection"] = &codestarconnections.Connection{ConnectionName: name, ProviderType: cloudformation.String("GitHub"), Tags: g.tags()}
	r["BuildLogGroup"] = &logs.LogGroup{LogGroupName: cloudformation.String("/cutover/" + name + "/codebuild"), RetentionInDays: cloudformation.Int(365),
		KmsKeyId: cloudformation.String(g.imp("LogsKeyArn")), Tags: g.tags()}
	for _, topic := range []string{"Approval", "Notification"} {
		r[topic+"Topic"] = &sns.Topic{TopicName: cloudformation.String(name + "-" + map[string]string{"Approval": "approvals", "Notification": "pipeline"}[topic]),
			KmsMasterKeyId: cloudformation.String(g.imp("LogsKeyArn")), Tags: g.tags()}
		g.subscribeNotifier(t, topic+"Topic")
	}
	r["NotificationTopicPolicy"] = &sns.TopicPolicy{Topics: []string{cloudformation.Ref("NotificationTopic")}, PolicyDocument: policy(map[string]any{
		"Effect": "Allow", "Principal": map[string]any{"Service": "codestar-notifications.amazonaws.com"}, "Action": "sns:Publish", "Resource": cloudformation.Ref("NotificationTopic")})}

	g.buildRoles(t)
	projects := map[string]string{"Build": g.buildSpec(), "Test": g.testSpec(config.ActionTest), "Integration": g.testSpec(config.ActionIntegration)}
	for _, env := range g.envOrder() {
		projects["Verify"+logicalID(env)] = g.verifySpec(env)
		for _, svc := range g.statics() {
			projects["Publish"+logicalID(env, svc)] = g.publishSpec()
		}
	}
	for id, spec := range projects {
		r[id+"Project"] = g.buildProject(id, spec)
	}
	g.codeDeploy(t)

	g.pipelineRole(t)
	for _, run := range g.pipelineRuns() {
		r[run.id] = g.codePipeline(run)
		r[run.id+"Notifications"] = &codestarnotifications.NotificationRule{
			Name: run.name + "-pipeline", DetailType: "FULL", Resource: sub("arn:${AWS::Partition}:codepipeline:${AWS::Region}:${AWS::AccountId}:${" + run.id + "}"),
			EventTypeIds:               []string{"codepipeline-pipeline-pipeline-execution-failed", "codepipeline-pipeline-pipeline-execution-succeeded", "codepipeline-pipeline-manual-approval-needed"},
			Targets:                    []codestarnotifications.NotificationRule_Target{{TargetType: "SNS", TargetAddress: cloudformation.Ref("NotificationTopic")}},
			AWSCloudFormationDependsOn: []string{"NotificationTopicPolicy"},
		}
		t.Outputs[run.id+"Name"] = cloudformation.Output{Value: cloudformation.Ref(run.id), Description: cloudformation.String("Runs on pushes to " + run.branch)}
	}
	t.Outputs["ConnectionArn"] = cloudformation.Output{Value: cloudformation.Ref("Connection"), Description: cloudformation.String("Complete the connection's handshake in the console before the first run")}
	return t
}

// privileged are the CodeBuild projects that run Docker: Build builds the
// images, Integration runs docker compose. The others run without it.
var privileged = map[string]bool{"Build": true, "Integration": true}

func (g *gen) buildProject(id, spec string) *codebuild.Project {
	env := []codebuild.Project_EnvironmentVariable{
		{Name: "CUTOVER_DOWNLOAD_URL", Value: cloudformation.Ref("CutoverDownloadUrl")},
		{Name: "CUTOVER_SHA256", Value: cloudformation.Ref("CutoverSha256")},
		{Name: "REGISTRY", Value: sub("${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}")},
		{Name: "PROJECT", Value: g.project},
	}
	for _, e := range g.envOrder() {
		if id == "Verify"+logicalID(e) {
			env = append(env, codebuild.Project_EnvironmentVariable{Name: "DOMAIN", Value: g.imp(logicalID(e) + "DomainName")})
		}
		for _, svc := range g.statics() {
			if es := logicalID(e, svc); id == "Publish"+es {
				env = append(env, codebuild.Project_EnvironmentVariable{Name: "SERVICE", Value: svc},
					codebuild.Project_EnvironmentVariable{Name: "BUCKET", Value: g.imp(es + "SiteBucketName")},
					codebuild.Project_EnvironmentVariable{Name: "DISTRIBUTION", Value: g.imp(es + "DistributionId")})
			}
		}
	}
	// Secrets reach the builds as references to Secrets Manager, never as
	// values; not the publish projects, which run cutover publish-static only.
	role := "CheckRole"
	switch {
	case id == "Build":
		role = "BuildRole"
	case strings.HasPrefix(id, "Publish"):
		role = g.publishRoleOf(id)
	}
	if p := g.cfg.Pipeline; p != nil && p.Secrets != nil && !strings.HasPrefix(id, "Publish") {
		for _, s := range p.Secrets.Names {
			env = append(env, codebuild.Project_EnvironmentVariable{Name: s, Type: cloudformation.String("SECRETS_MANAGER"), Value: "cutover/" + g.project + "/pipeline:" + s})
		}
	}
	p := &codebuild.Project{
		Name: cloudformation.String(g.project + "-" + logicalIDToKebab(id)), ServiceRole: cloudformation.GetAtt(role, "Arn"),
		EncryptionKey: cloudformation.String(g.imp("ArtifactsKeyArn")),
		Source:        &codebuild.Project_Source{Type: "CODEPIPELINE", BuildSpec: cloudformation.String(spec)},
		Artifacts:     &codebuild.Project_Artifacts{Type: "CODEPIPELINE"},
		Environment: &codebuild.Project_Environment{Type: "LINUX_CONTAINER", ComputeType: "BUILD_GENERAL1_SMALL", Image: "aws/codebuild/standard:7.0",
			PrivilegedMode: cloudformation.Bool(privileged[id]), EnvironmentVariables: env},
		LogsConfig:       &codebuild.Project_LogsConfig{CloudWatchLogs: &codebuild.Project_CloudWatchLogsConfig{Status: "ENABLED", GroupName: cloudformation.RefPtr("BuildLogGroup")}},
		TimeoutInMinutes: cloudformation.Int(60),
		Tags:             g.tags(),
	}
	if privileged[id] {
		p.AWSCloudFormationMetadata = skip("CKV_AWS_316", "This project runs Docker (Build builds the images, Integration runs docker compose), which needs the daemon of a privileged CodeBuild container; Test and Verify run unprivileged.")
	}
	return p
}

func logicalIDToKebab(id string) string {
	var out []rune
	for i, r := range id {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				out = append(out, '-')
			}
			r += 'a' - 'A'
		}
		out = append(out, r)
	}
	return string(out)
}

// buildRoles are the CodeBuild roles. Both read the source through the
// connection and write their logs; only BuildRole (the Build project) may
// push the project's images and read the task definitions it rewrites for
// CodeDeploy. CheckRole (Test, Integration, Verify) runs the pull request's
// own commands, so it gets no write access to anything deployed.
func (g *gen) buildRoles(t *cloudformation.Template) {
	var repos []any
	for _, svc := range g.containers() {
		repos = append(repos, g.imp("Repository"+logicalID(svc)+"Arn"))
	}
	logs := allow([]string{"logs:CreateLogStream", "logs:PutLogEvents"}, sub("${BuildLogGroup.Arn}"))
	common := []map[string]any{
		logs,
		allow([]string{"codestar-connections:UseConnection"}, cloudformation.Ref("Connection")),
		allow([]string{"secretsmanager:GetSecretValue"}, sub("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:cutover/"+g.project+"/pipeline*")),
	}
	t.Resources["BuildRole"] = &iam.Role{
		AssumeRolePolicyDocument: assumeRole("codebuild.amazonaws.com"),
		Policies: []iam.Role_Policy{{PolicyName: "build", PolicyDocument: policy(append(common,
			allow([]string{"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"}, sub("${ArtifactsBucket.Arn}/*")),
			allow([]string{"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"}, g.imp("ArtifactsKeyArn")),
			// These read-only calls accept no resource ARN.
			allow([]string{"ecr:GetAuthorizationToken", "ecs:DescribeTaskDefinition"}, "*"),
			allow([]string{"ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage", "ecr:DescribeImages"}, repos...),
		)...)}},
		Tags: g.tags(),
	}
	t.Resources["CheckRole"] = &iam.Role{
		AssumeRolePolicyDocument: assumeRole("codebuild.amazonaws.com"),
		Policies: []iam.Role_Policy{{PolicyName: "check", PolicyDocument: policy(append(common,
			allow([]string{"s3:GetObject", "s3:GetObjectVersion"}, sub("${ArtifactsBucket.Arn}/*")),
			allow([]string{"kms:Decrypt"}, g.imp("ArtifactsKeyArn")),
		)...)}},
		Tags: g.tags(),
	}
	g.publishRoles(t, logs)
}

// codeDeploy adds the application and, for every blue_green environment,
// one deployment group per service with its alarms and auto rollback.
func (g *gen) codeDeploy(t *cloudformation.Template) {
	r := t.Resources
	r["CodeDeployApplication"] = &codedeploy.Application{ApplicationName: cloudformation.String(g.project), ComputePlatform: cloudformation.String("ECS"), Tags: g.tags()}
	r["CodeDeployRole"] = &iam.Role{AssumeRolePolicyDocument: assumeRole("codedeploy.amazonaws.com"),
		ManagedPolicyArns: []string{sub("arn:${AWS::Partition}:iam::aws:policy/AWSCodeDeployRoleForECS")}, Tags: g.tags()}
	for _, env := range g.envOrder() {
		if !g.viaCodeDeploy(env) {
			continue
		}
		st := g.cfg.Environments[env].Strategy
		configName := codeDeployConfigs[st.Traffic]
		if st.Canary != nil || st.Linear != nil || configName == "" {
			configName = g.customDeployConfig(t, env, st)
		}
		events := []string{}
		if st.AutoRollback.OnFailure {
			events = append(events, "DEPLOYMENT_FAILURE")
		}
		if st.AutoRollback.OnAlarm {
			events = append(events, "DEPLOYMENT_STOP_ON_ALARM")
		}
		if st.AutoRollback.OnStop {
			events = append(events, "DEPLOYMENT_STOP_ON_REQUEST")
		}
		readyWait := int(st.ReadyWait.Std() / time.Minute)
		ready := &codedeploy.DeploymentGroup_DeploymentReadyOption{ActionOnTimeout: cloudformation.String("CONTINUE_DEPLOYMENT")}
		if st.ManualContinue {
			ready = &codedeploy.DeploymentGroup_DeploymentReadyOption{ActionOnTimeout: cloudformation.String("STOP_DEPLOYMENT"), WaitTimeInMinutes: cloudformation.Int(max(readyWait, 1))}
		}
		for _, svc := range g.containers() {
			var alarms []codedeploy.DeploymentGroup_Alarm
			for _, suffix := range []string{"p95-latency", "5xx-rate", "unhealthy-hosts"} {
				alarms = append(alarms, codedeploy.DeploymentGroup_Alarm{Name: cloudformation.String(g.project + "-" + env + "-" + svc + "-" + suffix)})
			}
			ev := logicalID(env)
			es := logicalID(env, svc)
			var testRoute *codedeploy.DeploymentGroup_TrafficRoute
			if g.testListener(env) {
				testRoute = &codedeploy.DeploymentGroup_TrafficRoute{ListenerArns: []string{g.imp(ev + "TestListenerArn")}}
			}
			r[es+"DeploymentGroup"] = &codedeploy.DeploymentGroup{
				ApplicationName: cloudformation.Ref("CodeDeployApplication"), DeploymentGroupName: cloudformation.String(env + "-" + svc),
				ServiceRoleArn: cloudformation.GetAtt("CodeDeployRole", "Arn"), DeploymentConfigName: cloudformation.String(configName),
				DeploymentStyle: &codedeploy.DeploymentGroup_DeploymentStyle{DeploymentType: cloudformation.String("BLUE_GREEN"), DeploymentOption: cloudformation.String("WITH_TRAFFIC_CONTROL")},
				BlueGreenDeploymentConfiguration: &codedeploy.DeploymentGroup_BlueGreenDeploymentConfiguration{DeploymentReadyOption: ready,
					TerminateBlueInstancesOnDeploymentSuccess: &codedeploy.DeploymentGroup_BlueInstanceTerminationOption{Action: cloudformation.String("TERMINATE"),
						TerminationWaitTimeInMinutes: cloudformation.Int(max(int(st.TerminationWait.Std()/time.Minute), 0))}},
				ECSServices: []codedeploy.DeploymentGroup_ECSService{{ClusterName: g.imp(ev + "ClusterName"), ServiceName: g.imp(es + "ServiceName")}},
				LoadBalancerInfo: &codedeploy.DeploymentGroup_LoadBalancerInfo{TargetGroupPairInfoList: []codedeploy.DeploymentGroup_TargetGroupPairInfo{{
					ProdTrafficRoute: &codedeploy.DeploymentGroup_TrafficRoute{ListenerArns: []string{g.imp(ev + "ProdListenerArn")}},
					TestTrafficRoute: testRoute,
					TargetGroups: []codedeploy.DeploymentGroup_TargetGroupInfo{{Name: targetGroupName(g.imp(es + "BlueTargetGroupArn"))},
						{Name: targetGroupName(g.imp(es + "GreenTargetGroupArn"))}},
				}}},
				AlarmConfiguration:        &codedeploy.DeploymentGroup_AlarmConfiguration{Enabled: cloudformation.Bool(true), Alarms: alarms},
				AutoRollbackConfiguration: &codedeploy.DeploymentGroup_AutoRollbackConfiguration{Enabled: cloudformation.Bool(len(events) > 0), Events: events},
				Tags:                      g.tags("dev.cutover.environment", env, "dev.cutover.service", svc),
			}
		}
	}
}

// customDeployConfig turns a custom canary or linear step into a
// CodeDeploy deployment configuration (CodeDeploy counts whole minutes).
func (g *gen) customDeployConfig(t *cloudformation.Template, env string, st config.Strategy) string {
	name := fmt.Sprintf("%s-%s", g.project, env)
	routing := &codedeploy.DeploymentConfig_TrafficRoutingConfig{Type: "AllAtOnce"}
	minutes := func(d config.Duration) int { return max(int(d.Std()/time.Minute), 1) }
	switch {
	case st.Canary != nil:
		routing = &codedeploy.DeploymentConfig_TrafficRoutingConfig{Type: "TimeBasedCanary",
			TimeBasedCanary: &codedeploy.DeploymentConfig_TimeBasedCanary{CanaryPercentage: st.Canary.Percent, CanaryInterval: minutes(st.Canary.Interval)}}
	case st.Linear != nil:
		routing = &codedeploy.DeploymentConfig_TrafficRoutingConfig{Type: "TimeBasedLinear",
			TimeBasedLinear: &codedeploy.DeploymentConfig_TimeBasedLinear{LinearPercentage: st.Linear.Percent, LinearInterval: minutes(st.Linear.Interval)}}
	}
	t.Resources[logicalID(env)+"DeploymentConfig"] = &codedeploy.DeploymentConfig{DeploymentConfigName: cloudformation.String(name),
		ComputePlatform: cloudformation.String("ECS"), TrafficRoutingConfig: routing}
	return cloudformation.Ref(logicalID(env) + "DeploymentConfig")
}

// targetGroupName is the name part of a target group ARN
// (arn:...:targetgroup/NAME/ID), which CodeDeploy asks for.
func targetGroupName(arn string) *string {
	return cloudformation.SelectPtr(1, cloudformation.Split("/", arn))
}

package export

import (
	"cmp"
	"slices"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/codebuild"
	cp "github.com/awslabs/goformation/v7/cloudformation/codepipeline"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
)

// pipelineRun is one CodePipeline: the branch whose pushes start it and the
// environments it deploys, in promotion order.
type pipelineRun struct {
	id     string // logical ID: "Pipeline" for the production branch, else BRANCH + "Pipeline"
	name   string
	branch string
	envs   []string
}

// pipelineRuns gives the production environment's branch the whole
// promotion path (every environment in order, approvals included), as the
// seeds' pipeline does, and each other environment branch a pipeline that
// deploys only the environments on that branch (develop → staging). A push
// to an earlier branch can so never reach production; without branches,
// one pipeline on main runs every environment.
func (g *gen) pipelineRuns() []pipelineRun {
	order := g.envOrder()
	main := "main"
	if len(order) > 0 && g.cfg.Environments[order[len(order)-1]].Branch != "" {
		main = g.cfg.Environments[order[len(order)-1]].Branch
	}
	runs := []pipelineRun{{id: "Pipeline", name: g.project, branch: main, envs: order}}
	seen := map[string]bool{main: true}
	for _, env := range order {
		b := g.cfg.Environments[env].Branch
		if b == "" || seen[b] {
			continue
		}
		seen[b] = true
		r := pipelineRun{id: logicalID(b) + "Pipeline", name: g.project + "-" + logicalIDToKebab(logicalID(b)), branch: b}
		for _, e := range order {
			if g.cfg.Environments[e].Branch == b {
				r.envs = append(r.envs, e)
			}
		}
		runs = append(runs, r)
	}
	return runs
}

// codePipeline builds one V2 pipeline: a CodeStar connection source
// triggered by pushes to run.branch, build, test and integration in
// CodeBuild, then per environment of the run (in promotion order) an
// optional manual approval announced on SNS, the deploy (ECS rolling or
// CodeDeployToECS blue/green, one action per service) and the verify checks.
func (g *gen) codePipeline(run pipelineRun) *cp.Pipeline {
	branch := run.branch
	build := func(project string, in []string, out []string, order int) cp.Pipeline_ActionDeclaration {
		a := cp.Pipeline_ActionDeclaration{Name: project, RunOrder: cloudformation.Int(order),
			ActionTypeId: &cp.Pipeline_ActionTypeId{Category: "Build", Owner: "AWS", Provider: "CodeBuild", Version: "1"},
			Configuration: map[string]any{"ProjectName": cloudformation.Ref(project + "Project"), "PrimarySource": in[0],
				"EnvironmentVariables": `[{"name":"BRANCH","value":"#{SourceVariables.BranchName}","type":"PLAINTEXT"}]`}}
		for _, n := range in {
			a.InputArtifacts = append(a.InputArtifacts, cp.Pipeline_InputArtifact{Name: n})
		}
		for _, n := range out {
			a.OutputArtifacts = append(a.OutputArtifacts, cp.Pipeline_OutputArtifact{Name: n})
		}
		return a
	}
	var built []string
	for _, svc := range g.cfg.ServiceNames() {
		if g.cfg.Services[svc].Build != nil {
			built = append(built, artifactName(svc))
		}
	}
	stages := []cp.Pipeline_StageDeclaration{
		{Name: "Source", Actions: []cp.Pipeline_ActionDeclaration{{Name: "Source", Namespace: cloudformation.String("SourceVariables"),
			ActionTypeId: &cp.Pipeline_ActionTypeId{Category: "Source", Owner: "AWS", Provider: "CodeStarSourceConnection", Version: "1"},
			Configuration: map[string]any{"ConnectionArn": cloudformation.Ref("Connection"), "FullRepositoryId": cloudformation.Ref("RepositoryId"),
				"BranchName": branch, "OutputArtifactFormat": "CODEBUILD_CLONE_REF"},
			OutputArtifacts: []cp.Pipeline_OutputArtifact{{Name: "Source"}}}}},
		{Name: "Build", Actions: []cp.Pipeline_ActionDeclaration{build("Build", []string{"Source"}, built, 1)}},
		{Name: "Test", Actions: []cp.Pipeline_ActionDeclaration{build("Test", []string{"Source"}, nil, 1)}},
		{Name: "Integration", Actions: []cp.Pipeline_ActionDeclaration{build("Integration", []string{"Source"}, nil, 1)}},
	}
	for _, env := range run.envs {
		e := g.cfg.Environments[env]
		ev := logicalID(env)
		if e.Approval != nil && e.Approval.Required {
			stages = append(stages, cp.Pipeline_StageDeclaration{Name: "Approve-" + env, Actions: []cp.Pipeline_ActionDeclaration{{Name: "Approve",
				ActionTypeId:  &cp.Pipeline_ActionTypeId{Category: "Approval", Owner: "AWS", Provider: "Manual", Version: "1"},
				Configuration: map[string]any{"NotificationArn": cloudformation.Ref("ApprovalTopic"), "CustomData": "Deploy commit #{SourceVariables.CommitId} to " + env + "?"}}}})
		}
		var deploys []cp.Pipeline_ActionDeclaration
		for _, svc := range g.cfg.ServiceNames() {
			if g.cfg.Services[svc].Build == nil {
				continue
			}
			es := logicalID(env, svc)
			art := artifactName(svc)
			a := cp.Pipeline_ActionDeclaration{Name: svc, RunOrder: cloudformation.Int(1), InputArtifacts: []cp.Pipeline_InputArtifact{{Name: art}}}
			switch {
			case g.static(svc):
				// cutover publish-static puts the built files in the site's
				// bucket under releases/<digest>/ and points the distribution
				// at them, as cutover deploy does; after the ECS services
				// deployed, as cutover deploy does too.
				a = build("Publish"+es, []string{art}, nil, 2)
				a.Name = svc
			case g.viaCodeDeploy(env):
				a.ActionTypeId = &cp.Pipeline_ActionTypeId{Category: "Deploy", Owner: "AWS", Provider: "CodeDeployToECS", Version: "1"}
				a.Configuration = map[string]any{"ApplicationName": cloudformation.Ref("CodeDeployApplication"), "DeploymentGroupName": cloudformation.Ref(es + "DeploymentGroup"),
					"TaskDefinitionTemplateArtifact": art, "TaskDefinitionTemplatePath": "taskdef-" + env + ".json",
					"AppSpecTemplateArtifact": art, "AppSpecTemplatePath": "appspec-" + env + ".json", "Image1ArtifactName": art, "Image1ContainerName": "IMAGE1_NAME"}
			default:
				a.ActionTypeId = &cp.Pipeline_ActionTypeId{Category: "Deploy", Owner: "AWS", Provider: "ECS", Version: "1"}
				a.Configuration = map[string]any{"ClusterName": g.imp(ev + "ClusterName"), "ServiceName": g.imp(es + "ServiceName"), "FileName": "imagedefinitions.json"}
			}
			deploys = append(deploys, a)
		}
		deploys = append(deploys, build("Verify"+ev, []string{"Source"}, nil, 3))
		deploys[len(deploys)-1].Name = "Verify"
		stages = append(stages, cp.Pipeline_StageDeclaration{Name: "Deploy-" + env, Actions: deploys})
	}
	return &cp.Pipeline{
		Name: cloudformation.String(run.name), PipelineType: cloudformation.String("V2"), ExecutionMode: cloudformation.String("SUPERSEDED"),
		RoleArn: cloudformation.GetAtt("PipelineRole", "Arn"),
		ArtifactStore: &cp.Pipeline_ArtifactStore{Type: "S3", Location: cloudformation.Ref("ArtifactsBucket"),
			EncryptionKey: &cp.Pipeline_EncryptionKey{Type: "KMS", Id: g.imp("ArtifactsKeyArn")}},
		Triggers: []cp.Pipeline_PipelineTriggerDeclaration{{ProviderType: "CodeStarSourceConnection", GitConfiguration: &cp.Pipeline_GitConfiguration{
			SourceActionName: "Source", Push: []cp.Pipeline_GitPushFilter{{Branches: &cp.Pipeline_GitBranchFilterCriteria{Includes: []string{branch}}}}}}},
		Stages: stages,
		Tags:   g.tags(),
	}
}

// pipelineRole: CodePipeline runs the source, builds, approvals and deploys
// of this project only.
func (g *gen) pipelineRole(t *cloudformation.Template) {
	var passRoles []any
	for _, env := range g.envOrder() {
		passRoles = append(passRoles, g.imp(logicalID(env)+"ExecutionRoleArn"))
		for _, svc := range g.cfg.ServiceNames() {
			if !g.static(svc) && g.cfg.Services[svc].Build != nil {
				passRoles = append(passRoles, g.imp(logicalID(env, svc)+"TaskRoleArn"))
			}
		}
	}
	var projects []any
	for _, r := range t.Resources {
		if p, ok := r.(*codebuild.Project); ok {
			projects = append(projects, sub("arn:${AWS::Partition}:codebuild:${AWS::Region}:${AWS::AccountId}:project/"+*p.Name))
		}
	}
	slices.SortFunc(projects, func(a, b any) int { return cmp.Compare(a.(string), b.(string)) })
	t.Resources["PipelineRole"] = &iam.Role{
		AssumeRolePolicyDocument: assumeRole("codepipeline.amazonaws.com"),
		Policies: []iam.Role_Policy{{PolicyName: "pipeline", PolicyDocument: policy(
			allow([]string{"s3:GetObject", "s3:GetObjectVersion", "s3:GetBucketVersioning", "s3:PutObject"}, sub("${ArtifactsBucket.Arn}"), sub("${ArtifactsBucket.Arn}/*")),
			allow([]string{"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"}, g.imp("ArtifactsKeyArn")),
			allow([]string{"codestar-connections:UseConnection"}, cloudformation.Ref("Connection")),
			allow([]string{"codebuild:StartBuild", "codebuild:BatchGetBuilds"}, projects...),
			allow([]string{"sns:Publish"}, cloudformation.Ref("ApprovalTopic")),
			// The approval topic is encrypted with the logs key: publishing
			// needs its data key, through SNS only.
			map[string]any{"Effect": "Allow", "Action": []string{"kms:GenerateDataKey*", "kms:Decrypt"}, "Resource": g.imp("LogsKeyArn"),
				"Condition": map[string]any{"StringEquals": map[string]any{"kms:ViaService": sub("sns.${AWS::Region}.amazonaws.com")}}},
			allow([]string{"codedeploy:CreateDeployment", "codedeploy:GetDeployment", "codedeploy:GetApplication", "codedeploy:GetApplicationRevision", "codedeploy:RegisterApplicationRevision", "codedeploy:GetDeploymentConfig"},
				sub("arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:application:"+g.project),
				sub("arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:"+g.project+"/*"),
				sub("arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentconfig:*")),
			allow([]string{"ecs:UpdateService", "ecs:DescribeServices"}, sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service/"+g.project+"-*/*")),
			// ECS does not accept a resource ARN for these task definition calls.
			allow([]string{"ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:TagResource"}, "*"),
			map[string]any{"Effect": "Allow", "Action": []string{"iam:PassRole"}, "Resource": passRoles,
				"Condition": map[string]any{"StringEquals": map[string]any{"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
		)}},
		Tags:                      g.tags(),
		AWSCloudFormationMetadata: skip("CKV_AWS_111", "ecs:RegisterTaskDefinition and ecs:TagResource support no resource-level permissions; every other write is scoped to this project's ARNs."),
	}
}

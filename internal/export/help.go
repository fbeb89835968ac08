package export

import "github.com/cutoverdev/cutover/internal/config"

// CloudFormationHelp is what `cutover export cloudformation --help` says
// about the templates: it lives beside the code that writes them, so a
// change to the templates and to their description go together.
const CloudFormationHelp = `Write CloudFormation templates for running cutover.yaml's services on AWS ECS/Fargate.

Templates, deployed in this order (each imports the exports "<project>-<Name>" of the ones before):

  shared.yaml            VPC over two AZs: public subnets for the load balancers, private subnets for
                         tasks, VPC endpoints (ECR api and dkr, S3 gateway, CloudWatch Logs, SSM,
                         Secrets Manager) instead of a NAT gateway; ECR repositories (scan on push,
                         immutable tags, lifecycle policy); KMS keys for artifacts/images and for logs.
  app-<environment>.yaml one per environment: an ALB with an HTTPS listener on 443 (parameters
                         CertificateArn and DomainName, the domain the certificate covers) and, for
                         blue_green with test traffic hooks (ecs.lambda_hooks), an HTTPS test listener
                         on 8443 reachable from the VPC only; host/path rules per service (their ARNs
                         are outputs); blue and green target groups
                         (one for rolling) with the health check of cutover.yaml; an ECS cluster; one
                         Fargate service per service in the private subnets (CODE_DEPLOY controller for
                         blue_green; ECS controller with ECS-native blue/green for ecs.blue_green: ecs,
                         its rules forwarding to both target groups; ECS controller with circuit
                         breaker and alarms for rolling); task
                         definitions, task and execution roles; CloudWatch alarms (p95 latency, 5xx rate,
                         unhealthy hosts over both target groups, CPU, memory, running tasks) notifying
                         an SNS topic.
  pipeline.yaml          CodePipeline V2, one per environment branch: CodeStar connection source (parameter
                         RepositoryId) triggered by pushes to that branch (the last environment's branch
                         runs every environment in order; another, such as develop, only its own
                         environments), Build, Test and Integration in CodeBuild
                         (buildspecs that run cutover, downloaded from parameter CutoverDownloadUrl and
                         checked against parameter CutoverSha256; only Build and Integration run Docker,
                         only Build may push images, and a commit's image is pushed once and deployed
                         by digest), then
                         per environment a manual approval announced on SNS (when required), the deploy
                         (ECS rolling or CodeDeployToECS blue/green) and verify (https://DomainName); the CodeDeploy
                         application and deployment groups (alarms, auto rollback, traffic mapped to
                         CodeDeployDefault.ECS* configurations); a notification rule.

Stack names: <project>-shared, <project>-app-<environment>, <project>-pipeline. For example:

  aws cloudformation deploy --stack-name bluemed-shared --template-file cf/shared.yaml
  # bootstrap: the first task definitions run the images tagged "initial" (parameter ImageTag):
  # push one per service to the repositories of the shared stack before the app stacks
  aws cloudformation deploy --stack-name bluemed-app-staging --template-file cf/app-staging.yaml \
      --capabilities CAPABILITY_IAM --parameter-overrides CertificateArn=arn:aws:acm:... DomainName=staging.example.com

After the bootstrap, releases register task definitions (cutover deploy, the pipeline, CodeDeploy):
keep ImageTag unchanged on stack updates, since a CODE_DEPLOY service refuses a task definition
change made by CloudFormation.

Point cutover deploy at a deployed app stack with environments.<env>.ecs: { region: ..., stack:
<project>-app-<env> }: it reads the cluster, subnets, roles, target groups and rules from the
stack's outputs.

Secrets never appear in the templates: tasks may read SSM parameters under /cutover/<project>/<env>/
and Secrets Manager secrets under cutover/<project>/<env>/ (a service's
environments.<env>.ecs.services.<name>.secrets, variable -> parameter name or ARN, reach its task
definitions, the stack's for rolling services and the Build's for CodeDeploy; one elsewhere is
refused); pipeline secrets are passed to CodeBuild as Secrets Manager references
(cutover/<project>/pipeline:NAME).`

// Written is one template WriteCloudFormation wrote.
type Written struct {
	Path      string `json:"path"`
	Stack     string `json:"stack"`
	Resources int    `json:"resources"`
}

// WriteCloudFormation builds cfg's templates and writes them into dir as
// format (yaml or json), in deployment order.
func WriteCloudFormation(cfg *config.Config, dir, format string) ([]Written, error) {
	files, err := Templates(cfg)
	if err != nil {
		return nil, err
	}
	paths, err := Write(dir, format, files)
	if err != nil {
		return nil, err
	}
	out := make([]Written, len(files))
	for i, f := range files {
		out[i] = Written{paths[i], f.Stack, len(f.Template.Resources)}
	}
	return out, nil
}

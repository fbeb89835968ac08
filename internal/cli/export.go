package cli

import (
	"fmt"
	"io"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/export"
	"github.com/spf13/cobra"
)

func newExportCmd(g *globals) *cobra.Command {
	var outDir string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export cutover.yaml as infrastructure code for other platforms",
		Args:  cobra.NoArgs,
		// `--output DIR` names the templates' directory, as in `cutover export
		// cloudformation --output cf`; `--output text|json` keeps its meaning
		// everywhere (the report's format), and --dir is the unambiguous form.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" {
				outDir, g.output = g.output, "text"
			}
			return nil
		},
	}
	cmd.AddCommand(newExportCloudFormationCmd(g, &outDir))
	return cmd
}

func newExportCloudFormationCmd(g *globals, outDir *string) *cobra.Command {
	var dir, format string
	cmd := &cobra.Command{
		Use:   "cloudformation",
		Short: "Write CloudFormation templates of the AWS architecture (VPC, ALB, ECS Fargate, ECR, CodePipeline, CodeDeploy, alarms)",
		Long: `Write CloudFormation templates for running cutover.yaml's services on AWS ECS/Fargate.

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
and Secrets Manager secrets under cutover/<project>/<env>/; pipeline secrets are passed to
CodeBuild as Secrets Manager references (cutover/<project>/pipeline:NAME).`,
		Example: "  cutover export cloudformation --output cf\n  cutover export cloudformation --dir cf --format json --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "yaml" && format != "json" {
				return usageError{fmt.Sprintf("--format: %q is not a template format (use yaml or json)", format)}
			}
			if *outDir != "" {
				if cmd.Flags().Changed("dir") && dir != *outDir {
					return usageError{fmt.Sprintf("--output %s and --dir %s name two directories: give one", *outDir, dir)}
				}
				dir = *outDir
			}
			cfg, err := config.Load(g.file)
			if err != nil {
				return err
			}
			files, err := export.Templates(cfg)
			if err != nil {
				return err
			}
			paths, err := export.Write(dir, format, files)
			if err != nil {
				return err
			}
			type written struct {
				Path      string `json:"path"`
				Stack     string `json:"stack"`
				Resources int    `json:"resources"`
			}
			res := make([]written, len(files))
			for i, f := range files {
				res[i] = written{paths[i], f.Stack, len(f.Template.Resources)}
			}
			return g.print(struct {
				Templates []written `json:"templates"`
			}{res}, func(w io.Writer) {
				for _, r := range res {
					fmt.Fprintf(w, "%s: %d resources (stack %s)\n", r.Path, r.Resources, r.Stack)
				}
			})
		},
	}
	cmd.Flags().StringVarP(&dir, "dir", "d", "cloudformation", "directory to write the templates into (`--output DIR` works too; --output text|json is the report's format)")
	cmd.Flags().StringVar(&format, "format", "yaml", "template format: yaml or json")
	return cmd
}

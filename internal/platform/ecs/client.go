// Package ecs is the AWS platform of cutover: deploy.Driven on Amazon ECS,
// where AWS runs each deployment and cutover's deployment controller starts,
// follows, stops and continues it: rolling deployments through the ECS
// deployment circuit breaker, blue/green through CodeDeploy (one deployment
// group per service) or ECS-native blue/green (BLUE_GREEN, LINEAR, CANARY).
//
// Every AWS service is reached through a narrow interface holding only the
// SDK client methods this package calls, so tests can stand in a real
// endpoint (moto) or stub the SDK's middleware stack.
package ecs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/codedeploy"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go/middleware"
)

// ECSAPI is the part of *ecs.Client this package uses.
type ECSAPI interface {
	RegisterTaskDefinition(context.Context, *ecs.RegisterTaskDefinitionInput, ...func(*ecs.Options)) (*ecs.RegisterTaskDefinitionOutput, error)
	DescribeServices(context.Context, *ecs.DescribeServicesInput, ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error)
	UpdateService(context.Context, *ecs.UpdateServiceInput, ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error)
	ListTasks(context.Context, *ecs.ListTasksInput, ...func(*ecs.Options)) (*ecs.ListTasksOutput, error)
	DescribeTasks(context.Context, *ecs.DescribeTasksInput, ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error)
	DescribeTaskDefinition(context.Context, *ecs.DescribeTaskDefinitionInput, ...func(*ecs.Options)) (*ecs.DescribeTaskDefinitionOutput, error)
	ListServiceDeployments(context.Context, *ecs.ListServiceDeploymentsInput, ...func(*ecs.Options)) (*ecs.ListServiceDeploymentsOutput, error)
	DescribeServiceDeployments(context.Context, *ecs.DescribeServiceDeploymentsInput, ...func(*ecs.Options)) (*ecs.DescribeServiceDeploymentsOutput, error)
	ContinueServiceDeployment(context.Context, *ecs.ContinueServiceDeploymentInput, ...func(*ecs.Options)) (*ecs.ContinueServiceDeploymentOutput, error)
	StopServiceDeployment(context.Context, *ecs.StopServiceDeploymentInput, ...func(*ecs.Options)) (*ecs.StopServiceDeploymentOutput, error)
	DescribeServiceRevisions(context.Context, *ecs.DescribeServiceRevisionsInput, ...func(*ecs.Options)) (*ecs.DescribeServiceRevisionsOutput, error)
}

// ELBAPI is the part of the elasticloadbalancingv2 client this package uses.
type ELBAPI interface {
	DescribeTargetHealth(context.Context, *elb.DescribeTargetHealthInput, ...func(*elb.Options)) (*elb.DescribeTargetHealthOutput, error)
}

// CloudWatchAPI is the part of the CloudWatch client this package uses.
type CloudWatchAPI interface {
	DescribeAlarms(context.Context, *cloudwatch.DescribeAlarmsInput, ...func(*cloudwatch.Options)) (*cloudwatch.DescribeAlarmsOutput, error)
}

// CodeDeployAPI is the part of the CodeDeploy client this package uses.
type CodeDeployAPI interface {
	CreateDeployment(context.Context, *codedeploy.CreateDeploymentInput, ...func(*codedeploy.Options)) (*codedeploy.CreateDeploymentOutput, error)
	GetDeployment(context.Context, *codedeploy.GetDeploymentInput, ...func(*codedeploy.Options)) (*codedeploy.GetDeploymentOutput, error)
	GetDeploymentTarget(context.Context, *codedeploy.GetDeploymentTargetInput, ...func(*codedeploy.Options)) (*codedeploy.GetDeploymentTargetOutput, error)
	StopDeployment(context.Context, *codedeploy.StopDeploymentInput, ...func(*codedeploy.Options)) (*codedeploy.StopDeploymentOutput, error)
	ContinueDeployment(context.Context, *codedeploy.ContinueDeploymentInput, ...func(*codedeploy.Options)) (*codedeploy.ContinueDeploymentOutput, error)
	ListDeployments(context.Context, *codedeploy.ListDeploymentsInput, ...func(*codedeploy.Options)) (*codedeploy.ListDeploymentsOutput, error)
}

// CloudFormationAPI is the part of the CloudFormation client this package uses.
type CloudFormationAPI interface {
	DescribeStacks(context.Context, *cloudformation.DescribeStacksInput, ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
}

// Clients are the AWS clients of one region.
type Clients struct {
	ECS            ECSAPI
	ELB            ELBAPI
	CloudWatch     CloudWatchAPI
	CodeDeploy     CodeDeployAPI
	CloudFormation CloudFormationAPI
}

// StackOutputs returns the outputs of a stack by key; a stack that is not
// (yet) complete is an error naming its status.
func StackOutputs(ctx context.Context, api CloudFormationAPI, stack string) (map[string]string, error) {
	out, err := api.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: &stack})
	if err != nil {
		return nil, explain(err, "stack "+stack)
	}
	if len(out.Stacks) == 0 {
		return nil, fmt.Errorf("aws: stack %s not found: deploy it (aws cloudformation deploy) or fix environments.<env>.ecs.stack", stack)
	}
	st := out.Stacks[0]
	switch st.StackStatus {
	case cftypes.StackStatusCreateComplete, cftypes.StackStatusUpdateComplete, cftypes.StackStatusUpdateRollbackComplete, cftypes.StackStatusImportComplete:
	default:
		return nil, fmt.Errorf("aws: stack %s is %s: wait for it to complete (or fix it) before deploying", stack, st.StackStatus)
	}
	m := map[string]string{}
	for _, o := range st.Outputs {
		m[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return m, nil
}

// ClientOptions say where and how to reach AWS.
type ClientOptions struct {
	Region string
	// Profile selects a shared config profile; empty uses the standard chain
	// (environment, shared config and profiles, SSO, web identity, instance/task roles).
	Profile string
	// Endpoint overrides every service's endpoint (for moto or LocalStack in tests).
	Endpoint string
	// MaxAttempts bounds the SDK's retries, throttling included (backoff with jitter); 0 means 10.
	MaxAttempts int
	// APIOptions are added to every client's middleware stack (tests record calls with them).
	APIOptions []func(*middleware.Stack) error
}

// NewClients loads AWS configuration from the standard chain and checks that
// credentials are present, so a missing login fails in one plain line before
// any deployment starts.
func NewClients(ctx context.Context, o ClientOptions) (Clients, error) {
	cfg, base, err := loadConfig(ctx, o)
	if err != nil {
		return Clients{}, err
	}
	return Clients{
		ECS:            ecs.NewFromConfig(cfg, func(opt *ecs.Options) { opt.BaseEndpoint = cmp.Or(base, opt.BaseEndpoint) }),
		ELB:            elb.NewFromConfig(cfg, func(opt *elb.Options) { opt.BaseEndpoint = cmp.Or(base, opt.BaseEndpoint) }),
		CloudWatch:     cloudwatch.NewFromConfig(cfg, func(opt *cloudwatch.Options) { opt.BaseEndpoint = cmp.Or(base, opt.BaseEndpoint) }),
		CodeDeploy:     codedeploy.NewFromConfig(cfg, func(opt *codedeploy.Options) { opt.BaseEndpoint = cmp.Or(base, opt.BaseEndpoint) }),
		CloudFormation: cloudformation.NewFromConfig(cfg, func(opt *cloudformation.Options) { opt.BaseEndpoint = cmp.Or(base, opt.BaseEndpoint) }),
	}, nil
}

// loadConfig loads the standard chain with o's region, profile and retries,
// checks for credentials, and returns o.Endpoint as an override, nil
// without one: the clients then keep the SDK's own endpoint settings
// (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>, endpoint_url in the shared
// config), as the aws CLI does, else AWS's endpoints.
func loadConfig(ctx context.Context, o ClientOptions) (aws.Config, *string, error) {
	attempts := o.MaxAttempts
	if attempts == 0 {
		attempts = 10
	}
	loaders := []func(*config.LoadOptions) error{config.WithRetryMaxAttempts(attempts)}
	if o.Region != "" {
		loaders = append(loaders, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		loaders = append(loaders, config.WithSharedConfigProfile(o.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loaders...)
	if err != nil {
		return aws.Config{}, nil, fmt.Errorf("aws: cannot load configuration: %v", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, nil, errors.New("aws: no region: set environments.<env>.ecs.region in cutover.yaml or AWS_REGION")
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cfg.Credentials.Retrieve(cctx); err != nil {
		return aws.Config{}, nil, errors.New("aws: no credentials found: set AWS_PROFILE (and run `aws sso login` for SSO) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	cfg.APIOptions = append(cfg.APIOptions, o.APIOptions...)
	var base *string
	if o.Endpoint != "" {
		base = aws.String(o.Endpoint)
	}
	return cfg, base, nil
}

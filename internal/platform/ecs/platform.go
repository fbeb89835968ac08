package ecs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// Service is one cutover service run as an ECS service: with the ECS
// deployment controller (rolling, ECS-native blue/green) or the CODE_DEPLOY
// one (CodeDeploy blue/green), behind a blue and a green target group.
type Service struct {
	ECSService   string            // ECS service name
	Container    string            // container name in the task definition; the cutover service name by default
	Port         int               // container port registered with the target groups
	Env          map[string]string // plain environment variables
	Secrets      map[string]string // variable -> SSM parameter or Secrets Manager ARN (valueFrom)
	DesiredCount int               // tasks at 100%
	CPU, Memory  string            // task size, such as "256" and "512"
	TargetGroups map[string]string // color -> target group ARN (ECS-native blue/green: production on blue, the new revision on green)
	// Production traffic: the rule ARN of the service's listener rule (which
	// ECS-native blue/green moves), or the listener ARN.
	Listener, Rule string
	// Test traffic (blue/green): the same, for the test listener. Optional.
	TestListener, TestRule string
	// TaskRoleARN is the role this service's containers run as; Options.TaskRoleARN when empty.
	TaskRoleARN string
	// StopTimeout is how long ECS waits after SIGTERM before SIGKILL
	// (clamped to Fargate's 2 to 120 seconds; ECS's default when 0).
	StopTimeout time.Duration
}

// Options describe an environment on ECS.
type Options struct {
	Cluster          string
	Region           string // for the awslogs driver
	FamilyPrefix     string // task definition family is FamilyPrefix + service name
	ExecutionRoleARN string
	TaskRoleARN      string
	LogGroup         string // awslogs group; no log configuration when empty
	LaunchType       types.LaunchType
	Subnets          []string // awsvpc network configuration; none when empty
	SecurityGroups   []string
	Services         map[string]Service
	// PollInterval is the first delay between polls of a deployment; it doubles up to MaxPollDelay.
	PollInterval, MaxPollDelay time.Duration
	// OnTaskDefinition is told each task definition registered, to record it against the revision.
	OnTaskDefinition func(revision, service, arn string)
	Log              *slog.Logger
	// Clock paces polls and measures how long a deployment has waited; the
	// wall clock when nil (tests simulate long deployments with a fake one).
	Clock Clock
}

// Clock is the time source of waits: Now, and a channel that fires after d.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Platform is one environment on ECS: its services, task definitions and
// AWS clients. Its deployments run through Driven, under the deployment
// controller. One Platform serves one environment from one goroutine.
type Platform struct {
	c Clients
	o Options
}

// New checks the options and returns the platform. Target groups and the
// listener rule are needed only by ECS-native blue/green, which checks them
// when it starts: rolling and CodeDeploy deployments do without.
func New(c Clients, o Options) (*Platform, error) {
	if o.Cluster == "" {
		return nil, errors.New("ecs: no cluster: set environments.<env>.ecs.cluster in cutover.yaml")
	}
	if len(o.Services) == 0 {
		return nil, errors.New("ecs: no services to deploy")
	}
	for name, s := range o.Services {
		switch {
		case s.ECSService == "":
			return nil, fmt.Errorf("ecs: service %s has no ECS service name", name)
		case s.Port == 0:
			return nil, fmt.Errorf("ecs: service %s has no container port", name)
		}
	}
	if o.LogGroup != "" && o.Region == "" {
		return nil, errors.New("ecs: a log group needs the region for the awslogs driver: set environments.<env>.ecs.region in cutover.yaml")
	}
	if o.LaunchType == "" {
		o.LaunchType = types.LaunchTypeFargate
	}
	if o.PollInterval == 0 {
		o.PollInterval = 5 * time.Second
	}
	if o.MaxPollDelay == 0 {
		o.MaxPollDelay = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = wallClock{}
	}
	return &Platform{c: c, o: o}, nil
}

func (p *Platform) names() []string {
	n := make([]string, 0, len(p.o.Services))
	for k := range p.o.Services {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}

// describe returns the ECS service.
func (p *Platform) describe(ctx context.Context, name string) (types.Service, error) {
	svc := p.o.Services[name].ECSService
	out, err := p.c.ECS.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: &p.o.Cluster, Services: []string{svc}})
	if err != nil {
		return types.Service{}, explain(err, "service "+svc+" in cluster "+p.o.Cluster)
	}
	if len(out.Services) == 0 || aws.ToString(out.Services[0].Status) == "INACTIVE" {
		return types.Service{}, fmt.Errorf("ecs: service %s not found in cluster %s: create it (EXTERNAL deployment controller) or fix environments.<env>.ecs", svc, p.o.Cluster)
	}
	return out.Services[0], nil
}

// network is the awsvpc configuration a deployment gives the service's new
// tasks: the environment's subnets and security groups (ecs.subnets and
// ecs.security_groups, or the app stack's outputs), with the service's own
// assign-public-IP setting kept (tasks in public subnets pull their images
// through it), and its security groups when the environment lists none.
// nil when the environment lists no subnets: the service's own
// configuration stays.
func (p *Platform) network(ctx context.Context, service string) (*types.NetworkConfiguration, error) {
	if len(p.o.Subnets) == 0 {
		return nil, nil
	}
	svc, err := p.describe(ctx, service)
	if err != nil {
		return nil, err
	}
	return p.networkFor(svc), nil
}

// networkFor is network for the service as described; nil without subnets.
func (p *Platform) networkFor(svc types.Service) *types.NetworkConfiguration {
	if len(p.o.Subnets) == 0 {
		return nil
	}
	public, groups := types.AssignPublicIpDisabled, p.o.SecurityGroups
	if c := currentNetwork(svc); c != nil {
		if c.AssignPublicIp != "" {
			public = c.AssignPublicIp
		}
		// No security group listed: ECS (and CodeDeploy) would give the new
		// tasks the VPC's default group; they keep the service's instead.
		if len(groups) == 0 {
			groups = c.SecurityGroups
		}
	}
	return &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{
		Subnets: p.o.Subnets, SecurityGroups: groups, AssignPublicIp: public}}
}

// currentNetwork is the awsvpc configuration the service's tasks run with:
// the service's, or its primary task set's (a CODE_DEPLOY service keeps it
// there); nil when it has none.
func currentNetwork(svc types.Service) *types.AwsVpcConfiguration {
	current := []*types.NetworkConfiguration{svc.NetworkConfiguration}
	for _, ts := range svc.TaskSets {
		if aws.ToString(ts.Status) == "PRIMARY" {
			current = append(current, ts.NetworkConfiguration)
		}
	}
	for _, nc := range current {
		if nc != nil && nc.AwsvpcConfiguration != nil {
			return nc.AwsvpcConfiguration
		}
	}
	return nil
}

func (p *Platform) container(name string) string {
	if c := p.o.Services[name].Container; c != "" {
		return c
	}
	return name
}

func errNoImage(rev, service string) error {
	return fmt.Errorf("ecs: revision %s has no image for service %s: build it again", rev, service)
}

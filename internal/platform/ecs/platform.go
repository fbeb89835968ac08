package ecs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
)

// Colors are the two task sets of a service.
var Colors = []string{"blue", "green"}

// Service is one cutover service run as an ECS service with the EXTERNAL
// deployment controller, one task set per color behind its own target group.
type Service struct {
	ECSService   string            // ECS service name
	Container    string            // container name in the task definition; the cutover service name by default
	Port         int               // container port registered with the target groups
	Env          map[string]string // plain environment variables
	Secrets      map[string]string // variable -> SSM parameter or Secrets Manager ARN (valueFrom)
	DesiredCount int               // tasks at 100%
	CPU, Memory  string            // task size, such as "256" and "512"
	TargetGroups map[string]string // color -> target group ARN
	// Production traffic: the rule ARN of the service's listener rule, or, when
	// empty, the listener ARN whose default action forwards to the service.
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

// Platform implements deploy.Platform on ECS task sets. One Platform serves
// one environment from one goroutine, as the contract allows.
type Platform struct {
	c      Clients
	o      Options
	counts map[string]map[string]int // color -> service -> tasks asked by the last ScaleSet
}

var _ deploy.Platform = (*Platform)(nil)

// New checks the options and returns the platform. Target groups and
// listeners are needed only by the task set methods (deploy.Platform), which
// check them on first use: rolling and CodeDeploy deployments do without.
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
	return &Platform{c: c, o: o, counts: map[string]map[string]int{}}, nil
}

// checkTaskSets says what is missing for task sets behind the load balancer.
func (p *Platform) checkTaskSets() error {
	for _, name := range p.names() {
		s := p.o.Services[name]
		if s.Listener == "" && s.Rule == "" {
			return fmt.Errorf("ecs: service %s has neither a listener nor a rule ARN for production traffic", name)
		}
		for _, color := range Colors {
			if s.TargetGroups[color] == "" {
				return fmt.Errorf("ecs: service %s has no %s target group ARN", name, color)
			}
		}
	}
	return nil
}

func (p *Platform) names() []string {
	n := make([]string, 0, len(p.o.Services))
	for k := range p.o.Services {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}

// Desired implements deploy.Platform.
func (p *Platform) Desired() map[string]int {
	d := map[string]int{}
	for name, s := range p.o.Services {
		d[name] = s.DesiredCount
	}
	return d
}

// externalID tags a task set with its color and cutover revision.
func externalID(color, rev string) string { return "cutover/" + color + "/" + rev }

func parseExternalID(id string) (color, rev string, ok bool) {
	parts := strings.SplitN(id, "/", 3)
	if len(parts) != 3 || parts[0] != "cutover" {
		return "", "", false
	}
	return parts[1], parts[2], true
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

// taskSet returns the service's task set of a color, if any.
func taskSet(s types.Service, color string) (types.TaskSet, bool) {
	for _, ts := range s.TaskSets {
		if c, _, ok := parseExternalID(aws.ToString(ts.ExternalId)); ok && c == color && aws.ToString(ts.Status) != "DRAINING" {
			return ts, true
		}
	}
	return types.TaskSet{}, false
}

// ScaleSet implements deploy.Platform. A task set runs one task definition,
// so a color asked to run another revision gets a new task set and its old
// one is deleted (ECS drains its targets for the deregistration delay).
// ECS starts tasks asynchronously: ScaleSet returns once ECS accepted the
// change, and Health reports the tasks as they start.
func (p *Platform) ScaleSet(ctx context.Context, color string, rev store.Revision, counts map[string]int) error {
	if err := p.checkTaskSets(); err != nil {
		return err
	}
	if p.counts[color] == nil {
		p.counts[color] = map[string]int{}
	}
	for _, name := range p.names() {
		want := counts[name]
		p.counts[color][name] = want
		if err := p.scaleService(ctx, name, color, rev, want); err != nil {
			return err
		}
	}
	return nil
}

func (p *Platform) scaleService(ctx context.Context, name, color string, rev store.Revision, want int) error {
	s := p.o.Services[name]
	svc, err := p.describe(ctx, name)
	if err != nil {
		return err
	}
	ts, exists := taskSet(svc, color)
	if exists {
		_, setRev, _ := parseExternalID(aws.ToString(ts.ExternalId))
		if want == 0 || (rev.ID != "" && setRev != rev.ID) {
			if err := p.deleteSet(ctx, s, ts); err != nil {
				return err
			}
			exists = false
		}
	}
	if want == 0 || (!exists && rev.ID == "") {
		return nil
	}
	desired := int(svc.DesiredCount)
	if want > desired {
		// Task set scale is a percentage of the service's desired count.
		if _, err := p.c.ECS.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: &p.o.Cluster, Service: &s.ECSService, DesiredCount: aws.Int32(int32(want))}); err != nil {
			return explain(err, "service "+s.ECSService)
		}
		desired = want
	}
	scale := &types.Scale{Unit: types.ScaleUnitPercent, Value: float64(want) * 100 / float64(desired)}
	if exists {
		if ts.Scale != nil && ts.Scale.Value == scale.Value {
			return nil
		}
		_, err := p.c.ECS.UpdateTaskSet(ctx, &ecs.UpdateTaskSetInput{Cluster: &p.o.Cluster, Service: &s.ECSService, TaskSet: ts.Id, Scale: scale})
		return explain(err, "task set "+aws.ToString(ts.Id)+" of service "+s.ECSService)
	}
	sr, ok := rev.Services[name]
	if !ok {
		return errNoImage(rev.ID, name)
	}
	td, err := p.registerTaskDefinition(ctx, name, rev.ID, sr)
	if err != nil {
		return err
	}
	in := &ecs.CreateTaskSetInput{
		Cluster:        &p.o.Cluster,
		Service:        &s.ECSService,
		TaskDefinition: &td,
		ExternalId:     aws.String(externalID(color, rev.ID)),
		LaunchType:     p.o.LaunchType,
		Scale:          scale,
		LoadBalancers: []types.LoadBalancer{{
			TargetGroupArn: aws.String(s.TargetGroups[color]),
			ContainerName:  aws.String(p.container(name)),
			ContainerPort:  aws.Int32(int32(s.Port)),
		}},
		NetworkConfiguration: p.network(),
	}
	out, err := p.c.ECS.CreateTaskSet(ctx, in)
	if err != nil {
		return explain(err, "service "+s.ECSService)
	}
	p.o.Log.Info("created task set", "service", name, "color", color, "revision", rev.ID, "task_set", aws.ToString(out.TaskSet.Id), "task_definition", td)
	return nil
}

func (p *Platform) deleteSet(ctx context.Context, s Service, ts types.TaskSet) error {
	_, err := p.c.ECS.DeleteTaskSet(ctx, &ecs.DeleteTaskSetInput{Cluster: &p.o.Cluster, Service: &s.ECSService, TaskSet: ts.Id, Force: aws.Bool(true)})
	var nf *types.TaskSetNotFoundException
	if errors.As(err, &nf) {
		return nil // already gone: idempotent
	}
	return explain(err, "task set "+aws.ToString(ts.Id)+" of service "+s.ECSService)
}

func (p *Platform) container(name string) string {
	if c := p.o.Services[name].Container; c != "" {
		return c
	}
	return name
}

func (p *Platform) network() *types.NetworkConfiguration {
	if len(p.o.Subnets) == 0 {
		return nil
	}
	return &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{
		Subnets:        p.o.Subnets,
		SecurityGroups: p.o.SecurityGroups,
		AssignPublicIp: types.AssignPublicIpDisabled,
	}}
}

func errNoImage(rev, service string) error {
	return fmt.Errorf("ecs: revision %s has no image for service %s: build it again", rev, service)
}

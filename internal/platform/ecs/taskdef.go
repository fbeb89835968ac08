package ecs

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/store"
)

// RegisterTaskDefinition registers a new task definition revision of a
// service for a cutover revision and returns its ARN.
func (p *Platform) RegisterTaskDefinition(ctx context.Context, service string, rev store.Revision) (string, error) {
	sr, ok := rev.Services[service]
	if !ok {
		return "", errNoImage(rev.ID, service)
	}
	return p.registerTaskDefinition(ctx, service, rev.ID, sr)
}

func (p *Platform) registerTaskDefinition(ctx context.Context, name, revID string, sr store.ServiceRevision) (string, error) {
	in := p.taskDefinitionInput(name, revID, sr)
	out, err := p.c.ECS.RegisterTaskDefinition(ctx, in)
	if err != nil {
		return "", explain(err, "task definition family "+aws.ToString(in.Family))
	}
	arn := aws.ToString(out.TaskDefinition.TaskDefinitionArn)
	p.o.Log.Info("registered task definition", "service", name, "revision", revID, "arn", arn)
	if p.o.OnTaskDefinition != nil {
		p.o.OnTaskDefinition(revID, name, arn)
	}
	return arn, nil
}

// taskDefinitionInput is pure: the task definition of a service at a revision.
// The image is the revision's image, pinned by digest. As in the exported
// templates, the root filesystem is read-only (write to volumes or /tmp
// mounts), and the service's stop timeout and own task role are kept.
func (p *Platform) taskDefinitionInput(name, revID string, sr store.ServiceRevision) *ecs.RegisterTaskDefinitionInput {
	s := p.o.Services[name]
	c := types.ContainerDefinition{
		Name:                   aws.String(p.container(name)),
		Image:                  aws.String(sr.Image),
		Essential:              aws.Bool(true),
		ReadonlyRootFilesystem: aws.Bool(true),
		PortMappings: []types.PortMapping{{
			ContainerPort: aws.Int32(int32(s.Port)),
			Protocol:      types.TransportProtocolTcp,
		}},
	}
	if s.StopTimeout > 0 {
		c.StopTimeout = aws.Int32(int32(min(max(s.StopTimeout/time.Second, 2), 120)))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		c.Environment = append(c.Environment, types.KeyValuePair{Name: aws.String(k), Value: aws.String(s.Env[k])})
	}
	for _, k := range slices.Sorted(maps.Keys(s.Secrets)) {
		c.Secrets = append(c.Secrets, types.Secret{Name: aws.String(k), ValueFrom: aws.String(s.Secrets[k])})
	}
	if p.o.LogGroup != "" {
		c.LogConfiguration = &types.LogConfiguration{
			LogDriver: types.LogDriverAwslogs,
			Options: map[string]string{
				"awslogs-group":         p.o.LogGroup,
				"awslogs-region":        p.o.Region,
				"awslogs-stream-prefix": name,
			},
		}
	}
	in := &ecs.RegisterTaskDefinitionInput{
		Family:               aws.String(p.o.FamilyPrefix + name),
		ContainerDefinitions: []types.ContainerDefinition{c},
		Tags: []types.Tag{
			{Key: aws.String("dev.cutover.revision"), Value: aws.String(revID)},
			{Key: aws.String("dev.cutover.service"), Value: aws.String(name)},
			{Key: aws.String("dev.cutover.config-hash"), Value: aws.String(sr.ConfigHash)},
		},
	}
	if p.o.ExecutionRoleARN != "" {
		in.ExecutionRoleArn = aws.String(p.o.ExecutionRoleARN)
	}
	if role := cmp.Or(s.TaskRoleARN, p.o.TaskRoleARN); role != "" {
		in.TaskRoleArn = aws.String(role)
	}
	if s.CPU != "" {
		in.Cpu = aws.String(s.CPU)
	}
	if s.Memory != "" {
		in.Memory = aws.String(s.Memory)
		// A soft limit equal to the task's memory changes nothing on Fargate
		// and lets EC2 placement (and moto) account for the container.
		if mib, err := strconv.Atoi(s.Memory); err == nil {
			in.ContainerDefinitions[0].MemoryReservation = aws.Int32(int32(mib))
		}
	}
	if p.o.LaunchType == types.LaunchTypeFargate {
		in.RequiresCompatibilities = []types.Compatibility{types.CompatibilityFargate}
		in.NetworkMode = types.NetworkModeAwsvpc
	} else if len(p.o.Subnets) > 0 {
		in.NetworkMode = types.NetworkModeAwsvpc
	}
	return in
}

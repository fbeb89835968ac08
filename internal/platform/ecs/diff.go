package ecs

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/store"
)

// TaskDefinitionDiff tells what deploying rev changes in the service's task
// definition, compared with the one the ECS service runs now, and in where
// its tasks run (subnets and security groups, when the environment lists
// them: see network): one "- field: old" / "+ field: new" pair per field
// that differs, sorted by field. Empty when nothing but the revision tags
// changes. A service that runs no task definition yet shows every field as
// new.
func (p *Platform) TaskDefinitionDiff(ctx context.Context, service string, rev store.Revision) ([]string, error) {
	sr, ok := rev.Services[service]
	if !ok {
		return nil, errNoImage(rev.ID, service)
	}
	next := p.taskDefinitionInput(service, rev.ID, sr)
	svc, err := p.describe(ctx, service)
	if err != nil {
		return nil, err
	}
	var current map[string]string
	if arn := aws.ToString(svc.TaskDefinition); arn != "" {
		out, err := p.c.ECS.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: &arn})
		if err != nil {
			return nil, explain(err, "task definition "+arn)
		}
		current = taskDefinitionFields(out.TaskDefinition.TaskRoleArn, out.TaskDefinition.ExecutionRoleArn, out.TaskDefinition.Cpu, out.TaskDefinition.Memory, out.TaskDefinition.ContainerDefinitions)
	}
	want := taskDefinitionFields(next.TaskRoleArn, next.ExecutionRoleArn, next.Cpu, next.Memory, next.ContainerDefinitions)
	if nc := p.networkFor(svc); nc != nil {
		if current == nil {
			current = map[string]string{}
		}
		networkFields(current, currentNetwork(svc))
		networkFields(want, nc.AwsvpcConfiguration)
	}
	return diffFields(current, want), nil
}

// networkFields adds a service's subnets and security groups to f, each in
// name order (AWS answers them in any).
func networkFields(f map[string]string, c *types.AwsVpcConfiguration) {
	if c == nil {
		return
	}
	for field, ids := range map[string][]string{"subnets": c.Subnets, "security_groups": c.SecurityGroups} {
		if len(ids) > 0 {
			f[field] = strings.Join(slices.Sorted(slices.Values(ids)), ", ")
		}
	}
}

// taskDefinitionFields flattens what a release changes in a task definition.
func taskDefinitionFields(taskRole, execRole, cpu, memory *string, containers []types.ContainerDefinition) map[string]string {
	f := map[string]string{"task_role": aws.ToString(taskRole), "execution_role": aws.ToString(execRole), "cpu": aws.ToString(cpu), "memory": aws.ToString(memory)}
	for _, c := range containers {
		n := "container " + aws.ToString(c.Name) + " "
		f[n+"image"] = aws.ToString(c.Image)
		f[n+"read_only_root"] = strconv.FormatBool(aws.ToBool(c.ReadonlyRootFilesystem))
		if c.StopTimeout != nil {
			f[n+"stop_timeout"] = strconv.Itoa(int(*c.StopTimeout)) + "s"
		}
		for _, pm := range c.PortMappings {
			f[n+"port "+strconv.Itoa(int(aws.ToInt32(pm.ContainerPort)))] = string(pm.Protocol)
		}
		for _, e := range c.Environment {
			f[n+"env "+aws.ToString(e.Name)] = aws.ToString(e.Value)
		}
		for _, s := range c.Secrets {
			f[n+"secret "+aws.ToString(s.Name)] = aws.ToString(s.ValueFrom)
		}
		if c.LogConfiguration != nil {
			f[n+"log_group"] = c.LogConfiguration.Options["awslogs-group"]
		}
	}
	for k, v := range f {
		if v == "" {
			delete(f, k)
		}
	}
	return f
}

func diffFields(old, next map[string]string) []string {
	keys := map[string]bool{}
	for k := range old {
		keys[k] = true
	}
	for k := range next {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	var lines []string
	for _, k := range sorted {
		o, hadOld := old[k]
		n, hasNew := next[k]
		if hadOld && hasNew && o == n {
			continue
		}
		if hadOld {
			lines = append(lines, fmt.Sprintf("- %s: %s", k, o))
		}
		if hasNew {
			lines = append(lines, fmt.Sprintf("+ %s: %s", k, n))
		}
	}
	return lines
}

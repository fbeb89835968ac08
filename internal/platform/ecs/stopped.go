package ecs

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/deploy"
)

// stoppedTasks returns the tasks started by setID (a deployment or task set
// ID) that ECS stopped because they could never serve.
func (p *Platform) stoppedTasks(ctx context.Context, name, setID string) ([]deploy.TaskFailure, error) {
	list, err := p.c.ECS.ListTasks(ctx, &ecs.ListTasksInput{Cluster: &p.o.Cluster, StartedBy: &setID, DesiredStatus: types.DesiredStatusStopped})
	if err != nil {
		return nil, explain(err, "tasks of task set "+setID)
	}
	if len(list.TaskArns) == 0 {
		return nil, nil
	}
	arns := list.TaskArns
	if len(arns) > 100 { // DescribeTasks takes at most 100
		arns = arns[:100]
	}
	out, err := p.c.ECS.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: &p.o.Cluster, Tasks: arns})
	if err != nil {
		return nil, explain(err, "tasks of task set "+setID)
	}
	var fs []deploy.TaskFailure
	for _, t := range out.Tasks {
		if f, ok := taskFailure(name, t); ok {
			fs = append(fs, f)
		}
	}
	return fs, nil
}

// taskFailure says why a stopped task failed, or false when ECS stopped it
// on purpose (scale in, deployment).
func taskFailure(service string, t types.Task) (deploy.TaskFailure, bool) {
	reason := aws.ToString(t.StoppedReason)
	failed := t.StopCode == types.TaskStopCodeTaskFailedToStart || t.StopCode == types.TaskStopCodeEssentialContainerExited ||
		strings.Contains(reason, "health check")
	if !failed {
		return deploy.TaskFailure{}, false
	}
	arn := aws.ToString(t.TaskArn)
	f := deploy.TaskFailure{Service: service, TaskID: arn[strings.LastIndex(arn, "/")+1:], Reason: reason}
	for _, c := range t.Containers {
		if c.ExitCode != nil {
			code := int(*c.ExitCode)
			f.ExitCode = &code
			if r := aws.ToString(c.Reason); r != "" {
				f.Reason = fmt.Sprintf("%s (container %s: %s)", reason, aws.ToString(c.Name), r)
			}
			break
		}
	}
	if f.Reason == "" {
		f.Reason = string(t.StopCode)
	}
	return f, true
}

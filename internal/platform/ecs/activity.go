package ecs

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// activity is what ECS tells about a service while one of its deployments
// runs, as the ECS console and ecspresso show it: the service's events and
// the reasons its new tasks stopped, each told once.
type activity struct {
	since time.Time
	seen  map[string]bool
}

func newActivity(since time.Time) *activity {
	return &activity{since: since, seen: map[string]bool{}}
}

// events returns the service events since the deployment started that were
// not told yet, oldest first (ECS lists them newest first).
func (a *activity) events(svc types.Service) []string {
	var lines []string
	for i := len(svc.Events) - 1; i >= 0; i-- {
		e := svc.Events[i]
		id := aws.ToString(e.Id)
		if a.seen[id] || (e.CreatedAt != nil && e.CreatedAt.Before(a.since)) {
			continue
		}
		a.seen[id] = true
		lines = append(lines, aws.ToString(e.Message))
	}
	return lines
}

// stopped returns the reasons of the failed tasks started by startedBy (a
// deployment or task set ID) that were not told yet.
func (p *Platform) stopped(ctx context.Context, service, startedBy string, a *activity) ([]string, error) {
	if startedBy == "" {
		return nil, nil
	}
	fs, err := p.stoppedTasks(ctx, service, startedBy)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, f := range fs {
		if a.seen["task/"+f.TaskID] {
			continue
		}
		a.seen["task/"+f.TaskID] = true
		line := fmt.Sprintf("task %s stopped: %s", f.TaskID, f.Reason)
		if f.ExitCode != nil {
			line += fmt.Sprintf(" (exit code %d)", *f.ExitCode)
		}
		lines = append(lines, line)
	}
	return lines, nil
}

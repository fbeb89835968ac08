package local

import (
	"context"
	"fmt"
	"time"

	"github.com/cutoverdev/cutover/internal/proxy"
)

// DownResult is what `cutover down` reports.
type DownResult struct {
	Project      string `json:"project"`
	Environment  string `json:"environment"`
	RemovedTasks int    `json:"removed_tasks"`
}

// Down removes the environment's routes first (so no request is sent to a
// stopping task), then every container labelled for it, then records it.
func (e *Env) Down(ctx context.Context) (DownResult, error) {
	if e.Proxy != nil {
		if err := e.Proxy.PutScope(ctx, e.scope(), proxy.State{}); err != nil {
			return DownResult{}, err
		}
	}
	n, err := e.Runtime.RemoveTasks(ctx, e.labels(), e.maxStopTimeout())
	if err != nil {
		return DownResult{}, err
	}
	if err := e.saveState(ctx, "", "down", "down", fmt.Sprintf("removed %d tasks and the routes", n)); err != nil {
		return DownResult{}, err
	}
	return DownResult{Project: e.Config.Project, Environment: e.Name, RemovedTasks: n}, nil
}

func (e *Env) maxStopTimeout() (d time.Duration) {
	for _, svc := range e.Config.Services {
		d = max(d, svc.StopTimeout.Std())
	}
	return d
}

package deploy

import (
	"context"

	"github.com/cutoverdev/cutover/internal/alarm"
	"github.com/cutoverdev/cutover/internal/store"
)

// Platform is where an environment's task sets run and how traffic reaches
// them, when the controller runs the deployment itself. The local platform
// implements it with Docker Engine and the built-in load balancer. Where
// the cloud runs the deployment (ECS), the platform is a Driven instead
// (driven.go).
//
// Contract:
//   - A task set is named by a color ("blue" or "green"); at most two exist
//     per environment. A set runs one revision.
//   - Every method is idempotent: the controller may call it again after a
//     crash with the same arguments, and must get the same end state.
//   - Methods are called from one goroutine per environment; a platform
//     need not be safe for concurrent use on one environment.
//   - ScaleSet changes only the number of tasks. New tasks are registered
//     with the set's target groups and receive traffic once healthy and only
//     in proportion to the set's route weight; removed tasks are first
//     deregistered, drained for the deregistration delay (or until idle),
//     then stopped with the service's stop timeout. ScaleSet returns once
//     the tasks are started or gone; it does not wait for health.
//   - Route applies a whole Routing in one atomic change at the load
//     balancer: no request is failed by it, and a reader never sees half
//     of it. Weights are percentages of production traffic per set.
//   - Health and Metrics only read. Metrics are cumulative since the set's
//     groups were created; the controller takes differences.
//   - Observe returns what really runs and routes, for reconciliation after
//     the controller was killed.
type Platform interface {
	// ScaleSet makes set `color` run rev with counts[service] tasks (0 removes them).
	ScaleSet(ctx context.Context, color string, rev store.Revision, counts map[string]int) error
	// Health reports the set's tasks; Failures name tasks that will never serve.
	Health(ctx context.Context, color string) (SetHealth, error)
	// Route sets production weights and the test listener's set atomically.
	Route(ctx context.Context, r Routing) error
	// Metrics returns the set's cumulative load balancer metrics.
	Metrics(ctx context.Context, color string) (alarm.Sample, error)
	// Observe returns the sets found running and the current routing.
	Observe(ctx context.Context) (Observed, error)
	// Desired returns each service's desired task count.
	Desired() map[string]int
}

// Keeper is implemented by a platform that restarts crashed tasks only when
// asked: the controller asks for the set that serves once a deployment is
// over, before it records the end, so a controller killed in between leaves
// the last phase for the next command to do again (during a deployment an
// exit is a failure to detect and report). ECS services restart their tasks
// themselves and need no Keeper.
type Keeper interface {
	KeepRunning(ctx context.Context, color string) error
}

// Routing is where production and test traffic go. Production maps a color
// to its percent of production traffic (the values sum to 100); Test is the
// color the test listener sends to ("" for none).
type Routing struct {
	Production map[string]int `json:"production"`
	Test       string         `json:"test,omitempty"`
}

// SetHealth is a task set's health at the load balancer and in the runtime.
type SetHealth struct {
	Healthy  int           `json:"healthy"`
	Total    int           `json:"total"` // tasks expected (the counts of the last ScaleSet)
	Running  int           `json:"running"`
	Failures []TaskFailure `json:"failures,omitempty"` // each failed task is reported once per call while it exists
}

// TaskFailure says, in plain words, why a task will never serve.
type TaskFailure struct {
	Service  string   `json:"service"`
	TaskID   string   `json:"task_id"`
	Reason   string   `json:"reason"`
	ExitCode *int     `json:"exit_code,omitempty"`
	Logs     []string `json:"logs,omitempty"` // last log lines
}

func (f TaskFailure) Error() string { return f.Service + ": " + f.Reason }

// SetInfo is a task set found running.
type SetInfo struct {
	Color    string         `json:"color"`
	Revision string         `json:"revision"`
	Tasks    map[string]int `json:"tasks"` // service -> running tasks
}

// Observed is what runs and how traffic is routed right now.
type Observed struct {
	Sets    []SetInfo `json:"sets"`
	Routing Routing   `json:"routing"`
}

// Set returns the set of a color, if it runs.
func (o Observed) Set(color string) (SetInfo, bool) {
	for _, s := range o.Sets {
		if s.Color == color {
			return s, true
		}
	}
	return SetInfo{}, false
}

// Serving is the color with most production traffic, or "".
func (r Routing) Serving() string {
	best, w := "", 0
	for _, c := range []string{"blue", "green"} {
		if r.Production[c] > w {
			best, w = c, r.Production[c]
		}
	}
	return best
}

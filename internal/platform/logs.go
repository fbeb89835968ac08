// Package platform picks, for what works the same on every platform, the
// platform an environment runs on: today the logs of a service
// (`cutover logs ENV SERVICE`).
package platform

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/export"
	"github.com/cutoverdev/cutover/internal/platform/ecs"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
)

// LogsOptions say which of a service's log lines to read.
type LogsOptions struct {
	Follow bool
	Since  time.Duration // ecs: events of the last Since (CloudWatch Logs keeps them by time); local: lines of the last Since, all when 0
	Tail   int           // local: the last Tail lines of each container (the engine keeps them by count); <= 0 for all
	Poll   time.Duration // ecs with Follow: between polls of CloudWatch Logs (2s when 0)
	// Engine connects to the local platform's Docker engine as the store
	// whose containers are read (docker.Runtime.SetOwner): another
	// CUTOVER_HOME's containers of the same project and environment are
	// not this one's.
	Engine func(context.Context) (*docker.Runtime, error)
}

// LogLine is one line of a service's task, from either platform.
type LogLine struct {
	Time    time.Time // zero on the local platform (the engine's lines carry no time here)
	Task    string    // the ECS task ID or the container's short ID
	Message string
}

// ServiceLogs reads the logs of service in environment env: on platform ecs
// the tasks' CloudWatch Logs (the awslogs group of the environment, read
// from cutover.yaml or its app stack's outputs, and the service's stream
// prefix, which cutover's and the exported task definitions set to the
// service's name); on the local platform its containers' output from the
// Docker engine.
func ServiceLogs(ctx context.Context, cfg *config.Config, env, service string, o LogsOptions, emit func(LogLine) error) error {
	e := cfg.Environments[env]
	if e == nil {
		return fmt.Errorf("no environment named %q (environments: %s)", env, strings.Join(cfg.EnvironmentNames(), ", "))
	}
	if cfg.Services[service] == nil {
		return fmt.Errorf("no service named %q (services: %s)", service, strings.Join(cfg.ServiceNames(), ", "))
	}
	if e.Platform == config.PlatformECS && cfg.Services[service].Static != nil {
		return fmt.Errorf("service %s is static on %s: S3 and CloudFront serve its files, and no task writes logs (cutover logs reads tasks' logs)", service, env)
	}
	if e.Platform != config.PlatformECS {
		if o.Engine == nil {
			return fmt.Errorf("reading the logs of %s in %s: no engine connection given", service, env) // a caller's mistake
		}
		rt, err := o.Engine(ctx)
		if err != nil {
			return err
		}
		var since time.Time
		if o.Since > 0 {
			since = time.Now().Add(-o.Since)
		}
		return local.ServiceLogs(ctx, rt, cfg.Project, env, service, o.Follow, o.Tail, since, func(l local.LogLine) error {
			return emit(LogLine{Task: l.Task, Message: l.Message})
		})
	}
	x := e.ECS
	opts := ecs.ClientOptions{Region: x.Region, Profile: x.Profile, Endpoint: x.Endpoint}
	group := x.LogGroup
	if group == "" && x.Stack != "" {
		c, err := ecs.NewClients(ctx, opts)
		if err != nil {
			return err
		}
		outputs, err := ecs.StackOutputs(ctx, c.CloudFormation, x.Stack)
		if err != nil {
			return err
		}
		filled, err := export.ECSFromOutputs(cfg, env, outputs)
		if err != nil {
			return fmt.Errorf("environments.%s.ecs.stack %s: %w", env, x.Stack, err)
		}
		group = filled.LogGroup
	}
	api, err := ecs.NewLogsClient(ctx, opts)
	if err != nil {
		return err
	}
	since := time.Now().Add(-o.Since)
	return ecs.StreamLogs(ctx, api, ecs.LogsQuery{Group: group, StreamPrefix: service + "/", Since: since, Follow: o.Follow, Poll: o.Poll}, func(ev ecs.LogEvent) error {
		return emit(LogLine{Time: ev.Time, Task: ev.Task, Message: ev.Message})
	})
}

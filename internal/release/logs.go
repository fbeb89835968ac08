package release

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/mask"
	"github.com/cutoverdev/cutover/internal/platform"
)

// ServiceLogsOptions say which of a service's log lines to read (see
// platform.LogsOptions). SinceSet, TailSet and ActionSet say the caller
// chose Since, Tail or an execution's action: a choice that does nothing
// on the environment's platform is an error, not ignored.
type ServiceLogsOptions struct {
	Follow                       bool
	Since                        time.Duration // ecs: events of this last period; local, when SinceSet: lines of this last period
	Tail                         int           // local: the last lines of each container; 0 for all
	SinceSet, TailSet, ActionSet bool
}

// LogLine is one line of a service's task, from either platform.
type LogLine = platform.LogLine

// LogsTarget tells `logs EXECUTION` and `logs ENV SERVICE` apart: two
// arguments are ENV SERVICE, and ENV must be an environment of cutover.yaml;
// one argument is an execution (env is ""), unless it names an environment
// (then SERVICE is missing).
func (m *Manager) LogsTarget(args []string) (env, service string, err error) {
	cfg := m.Config
	if len(args) == 1 {
		if cfg.Environments[args[0]] != nil {
			return "", "", UsageError{fmt.Sprintf("cutover logs %s needs a SERVICE: cutover logs %s SERVICE (services: %s); an execution's log is cutover logs EXECUTION",
				args[0], args[0], strings.Join(cfg.ServiceNames(), ", "))}
		}
		return "", "", nil
	}
	if cfg.Environments[args[0]] == nil {
		return "", "", UsageError{fmt.Sprintf("%q is not an environment of %s (environments: %s): cutover logs ENV SERVICE reads a service's logs, cutover logs EXECUTION an execution's",
			args[0], cfg.File, strings.Join(cfg.EnvironmentNames(), ", "))}
	}
	return args[0], args[1], nil
}

// ServiceLogs passes the logs of service in env to emit: the tasks'
// CloudWatch Logs on platform ecs, the containers' output locally.
func (m *Manager) ServiceLogs(ctx context.Context, env, service string, o ServiceLogsOptions, emit func(LogLine) error) error {
	if o.Since <= 0 || o.Tail < 0 {
		return UsageError{"--since must be more than 0 and --tail 0 or more"}
	}
	e, err := m.environment(env)
	if err != nil {
		return err
	}
	onECS := e.Platform == config.PlatformECS
	switch {
	case o.ActionSet:
		return UsageError{"--action is for cutover logs EXECUTION"}
	case onECS && o.TailSet:
		return UsageError{fmt.Sprintf("--tail is for the local platform; %s is on ecs, where --since chooses the period", env)}
	}
	since := o.Since
	if !onECS && !o.SinceSet {
		since = 0 // locally the engine keeps lines by count: --tail's, unless a period is asked for
	}
	if !onECS {
		// A task that prints its secret: the lines are shown, pasted, shared.
		values, err := m.secrets().Values(env)
		if err != nil {
			return err
		}
		if len(values) > 0 {
			masker, inner := mask.New(values), emit
			emit = func(l LogLine) error {
				l.Message = masker.Replace(l.Message)
				return inner(l)
			}
		}
	}
	return platform.ServiceLogs(ctx, m.Config, env, service, platform.LogsOptions{Follow: o.Follow, Since: since, Tail: o.Tail, Engine: m.runtime}, emit)
}

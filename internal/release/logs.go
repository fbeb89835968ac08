package release

import (
	"context"

	"github.com/cutoverdev/cutover/internal/platform"
)

// ServiceLogsOptions say which of a service's log lines to read (see platform.LogsOptions).
type ServiceLogsOptions = platform.LogsOptions

// LogLine is one line of a service's task, from either platform.
type LogLine = platform.LogLine

// ServiceLogs passes the logs of service in env to emit: the tasks'
// CloudWatch Logs on platform ecs, the containers' output locally.
func (m *Manager) ServiceLogs(ctx context.Context, env, service string, o ServiceLogsOptions, emit func(LogLine) error) error {
	return platform.ServiceLogs(ctx, m.Config, env, service, o, emit)
}

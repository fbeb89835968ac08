package cli

// `cutover logs ENV SERVICE [-f]`: a service's logs on the platform its
// environment runs on (internal/platform picks it). `cutover logs
// EXECUTION` (executions.go) is the other form of the same command.

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"context"

	"github.com/spf13/cobra"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/release"
)

type envLogsFlags struct {
	cmd   *cobra.Command
	since time.Duration
	tail  int
}

func addEnvLogsFlags(cmd *cobra.Command) *envLogsFlags {
	f := &envLogsFlags{cmd: cmd}
	cmd.Flags().DurationVar(&f.since, "since", 10*time.Minute, "ENV SERVICE on ecs: events of this last period")
	cmd.Flags().IntVar(&f.tail, "tail", 100, "ENV SERVICE on the local platform: the last lines of each container (0 for all)")
	return f
}

// logsArgs accepts `logs EXECUTION` and `logs ENV SERVICE`.
func logsArgs(cmd *cobra.Command, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usageError{fmt.Sprintf("%s needs EXECUTION, or ENV SERVICE (got %d arguments; see `%s --help`)", cmd.CommandPath(), len(args), cmd.CommandPath())}
	}
	return nil
}

// envLogsTarget tells the two forms apart: two arguments are ENV SERVICE,
// and ENV must be an environment of cutover.yaml; one argument is an
// execution, unless it names an environment (then SERVICE is missing).
func envLogsTarget(m *release.Manager, args []string) (env, service string, ok bool, err error) {
	cfg := m.Config
	if len(args) == 1 {
		if cfg.Environments[args[0]] != nil {
			return "", "", false, usageError{fmt.Sprintf("cutover logs %s needs a SERVICE: cutover logs %s SERVICE (services: %s); an execution's log is cutover logs EXECUTION",
				args[0], args[0], strings.Join(cfg.ServiceNames(), ", "))}
		}
		return "", "", false, nil
	}
	if cfg.Environments[args[0]] == nil {
		return "", "", false, usageError{fmt.Sprintf("%q is not an environment of %s (environments: %s): cutover logs ENV SERVICE reads a service's logs, cutover logs EXECUTION an execution's",
			args[0], cfg.File, strings.Join(cfg.EnvironmentNames(), ", "))}
	}
	return args[0], args[1], true, nil
}

func runEnvLogs(ctx context.Context, g *globals, m *release.Manager, env, service string, follow bool, f *envLogsFlags) error {
	cmd, cfg := f.cmd, m.Config
	if f.since <= 0 || f.tail < 0 {
		return usageError{"--since must be more than 0 and --tail 0 or more"}
	}
	// A flag that does nothing on this platform is an error, not ignored.
	onECS := cfg.Environments[env].Platform == config.PlatformECS
	switch {
	case cmd.Flags().Changed("action"):
		return usageError{"--action is for cutover logs EXECUTION"}
	case onECS && cmd.Flags().Changed("tail"):
		return usageError{fmt.Sprintf("--tail is for the local platform; %s is on ecs, where --since chooses the period", env)}
	case !onECS && cmd.Flags().Changed("since"):
		return usageError{fmt.Sprintf("--since is for ecs; %s is local, where --tail chooses the last lines of each container", env)}
	}
	enc := json.NewEncoder(g.stdout)
	return m.ServiceLogs(ctx, env, service, release.ServiceLogsOptions{Follow: follow, Since: f.since, Tail: f.tail}, func(l release.LogLine) error {
		if g.json() {
			return enc.Encode(l)
		}
		if l.Time.IsZero() {
			_, err := fmt.Fprintf(g.stdout, "%-12s %s\n", l.Task, l.Message)
			return err
		}
		_, err := fmt.Fprintf(g.stdout, "%s %-12s %s\n", l.Time.Local().Format("15:04:05"), shortTask(l.Task), l.Message)
		return err
	})
}

func shortTask(id string) string { return id[:min(len(id), 12)] }

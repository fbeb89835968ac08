// Package cli holds cutover's cobra commands, grouped by what they act on
// (deploy.go: an environment's deployments; executions.go: the pipeline's
// executions; ...). A command binds flags, makes one call to
// internal/release (or the package that does the work) and renders the
// result: text for people or JSON for scripts (--output json), and
// deployment events as they arrive. No decision lives here. Errors are
// printed once, on stderr, as one or two plain lines; the exit code is 0
// only on success.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X github.com/cutoverdev/cutover/internal/cli.Version=...".
var Version = "dev"

// globals are the flags every command shares.
type globals struct {
	output string // text | json
	file   string // path to cutover.yaml
	home   string // state directory
	stdout io.Writer
	stderr io.Writer
}

func (g *globals) json() bool { return g.output == "json" }

// print writes v as indented JSON in json mode, or calls text otherwise.
func (g *globals) print(v any, text func(w io.Writer)) error { return g.write(v, "  ", text) }

// printResult ends a stream of JSON events (deploy, up) with v on one
// line, so the whole output is JSON Lines; text mode is as print.
func (g *globals) printResult(v any, text func(w io.Writer)) error { return g.write(v, "", text) }

func (g *globals) write(v any, indent string, text func(w io.Writer)) error {
	if g.json() {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", indent)
		return enc.Encode(v)
	}
	text(g.stdout)
	return nil
}

// show and showResult print v as print and printResult do, once the call
// that made it succeeded: a failed call's error is returned, nothing printed.
func (g *globals) show(v any, err error, text func(w io.Writer)) error {
	if err != nil {
		return err
	}
	return g.print(v, text)
}

func (g *globals) showResult(v any, err error, text func(w io.Writer)) error {
	if err != nil {
		return err
	}
	return g.printResult(v, text)
}

// withHome is a RunE that resolves the state directory (release.HomeDir) for fn.
func (g *globals) withHome(fn func(ctx context.Context, home string, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		home, err := release.HomeDir(g.home)
		if err != nil {
			return err
		}
		return fn(cmd.Context(), home, args)
	}
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "cutover",
		Short:         "Commit to production with zero downtime: pipeline, blue/green releases, instant rollback",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" {
				return release.UsageError{Msg: fmt.Sprintf("--output: %q is not a format (use text or json)", g.output)}
			}
			if wd, err := os.Getwd(); err == nil && !cmd.Flags().Changed("file") && cmd.Name() != "init" {
				// From a subdirectory of the repository, its cutover.yaml (init
				// writes one where it runs).
				g.file = config.Find(wd, g.file)
			}
			return nil
		},
	}
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	root.PersistentFlags().StringVarP(&g.file, "file", "f", "cutover.yaml", "path to cutover.yaml")
	root.PersistentFlags().StringVar(&g.home, "home", "", "state directory (default $CUTOVER_HOME or ~/.local/share/cutover)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return release.UsageError{Msg: fmt.Sprintf("%v (see `%s --help`)", err, cmd.CommandPath())}
	})
	root.AddCommand(
		newVersionCmd(g), newValidateCmd(g), newSchemaCmd(g), newInitCmd(g),
		newUpCmd(g), newDownCmd(g), newStatusCmd(g), newProxyCmd(g),
		newDeployCmd(g), newRollbackCmd(g), newHistoryCmd(g), newPruneCmd(g), newDoctorCmd(g),
		newStopCmd(g), newContinueCmd(g), newPromoteCmd(g),
		newRunCmd(g), newExecutionsCmd(g), newLogsCmd(g), newDecideCmd(g, true), newDecideCmd(g, false),
		newCancelCmd(g), newRetryCmd(g), newServeCmd(g),
		newExportCmd(g), newPublishStaticCmd(g), newTokenCmd(g), newSecretsCmd(g), newAuditCmd(g), newManCmd(g), newDashboardCmd(g),
	)
	auditCommands(g, root)
	completeArgs(g, root)
	return root
}

// Execute runs the CLI and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		msg := strings.TrimSpace(err.Error())
		var ue release.UsageError
		if !errors.As(err, &ue) && strings.HasPrefix(msg, "unknown command") {
			// cobra adds "\n\nDid you mean this?\n\tname" lines: keep one line.
			head, suggestions, _ := strings.Cut(msg, "\n\nDid you mean this?")
			msg = head + " (see `cutover --help`)"
			if names := strings.Fields(suggestions); len(names) > 0 {
				msg = head + " (did you mean " + strings.Join(names, " or ") + "? see `cutover --help`)"
			}
		}
		if g.json() || jsonRequested(args) {
			// A script that asked for JSON reads its errors as JSON too.
			_ = json.NewEncoder(stderr).Encode(map[string]string{"error": msg})
			return 1
		}
		fmt.Fprintln(stderr, "cutover: "+msg)
		return 1
	}
	return 0
}

// jsonRequested: args ask for --output json (also when the flags could
// not be parsed, so g.output was never set).
func jsonRequested(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--output=json" || a == "-ojson" || a == "-o=json":
			return true
		case (a == "-o" || a == "--output") && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return false
}

// onArg is a command on one ENV or EXECUTION (arg): `use ARG`, run with
// the project's Manager and that argument.
func (g *globals) onArg(use, arg, short string, run func(ctx context.Context, m *release.Manager, arg string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use + " " + arg,
		Short: short,
		Args:  exactArgs(1, arg),
		RunE: g.withManager(func(ctx context.Context, m *release.Manager, args []string) error {
			return run(ctx, m, args[0])
		}),
	}
}

// withManager is a RunE that opens the project's Manager for fn and closes it.
func (g *globals) withManager(fn func(ctx context.Context, m *release.Manager, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		return withManager(cmd.Context(), g, func(m *release.Manager) error { return fn(cmd.Context(), m, args) })
	}
}

// withManager opens cutover.yaml's project and the state directory's store
// for fn, with deployment events rendered on the terminal (or as JSON
// lines with --output json), and closes them.
func withManager(ctx context.Context, g *globals, fn func(m *release.Manager) error) error {
	home, err := release.HomeDir(g.home)
	if err != nil {
		return err
	}
	m, err := release.Open(ctx, g.file, home)
	if err != nil {
		return err
	}
	defer m.Close()
	m.Progress = newProgress(g).event
	m.Log = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return fn(m)
}

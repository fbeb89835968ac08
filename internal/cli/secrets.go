package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/short"
)

// maxSecretSize bounds a value read from standard input (an env variable,
// even a PEM key, is far smaller).
const maxSecretSize = 64 << 10

func newSecretsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Set the values of a local environment's secrets (services.NAME.secrets): never in cutover.yaml, the store or a log",
		Long: "cutover.yaml names a service's secrets (services.NAME.secrets: [DB_PASSWORD]); their values\n" +
			"are kept on this machine, per environment, in a 0600 file under the state directory, and\n" +
			"given to the service's tasks when they start. A value is read from standard input (on a\n" +
			"terminal, one line typed without echo; pipe a multi-line value such as a key from its\n" +
			"file), never from the command line, and never shown again. Tasks already running keep\n" +
			"the value they started with until the next deployment.\n" +
			"On platform ecs, ECS reads secrets from SSM or Secrets Manager instead.",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newSecretsSetCmd(g), newSecretsUnsetCmd(g), newSecretsListCmd(g))
	return cmd
}

func newSecretsSetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "set ENV NAME",
		Short: "Set a secret's value in a local environment, read from standard input (one trailing newline is dropped)",
		Args:  secretArgs(true),
		RunE: g.withManager(func(_ context.Context, m *release.Manager, args []string) error {
			// The environment first: a value typed for one that is not is typed for nothing.
			if err := m.SecretEnvironment(args[0], args[1]); err != nil {
				return err
			}
			value, err := readSecret(os.Stdin, g.stderr, args[1])
			if err != nil {
				return err
			}
			c, err := m.SetSecret(args[0], args[1], value)
			return g.show(c, err, func(w io.Writer) {
				verb := "set"
				if c.Replaced {
					verb = "replaced"
				}
				fmt.Fprintf(w, "%s %s's secret %s (%s)\n", verb, c.Environment, c.Name, secretUse(c, m.Config.SecretNames()))
			})
		}),
	}
}

func newSecretsUnsetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unset ENV NAME",
		Short: "Remove a secret's value from a local environment",
		Args:  secretArgs(false),
		RunE: g.withManager(func(_ context.Context, m *release.Manager, args []string) error {
			c, err := m.UnsetSecret(args[0], args[1])
			return g.show(c, err, func(w io.Writer) {
				if !c.Removed {
					fmt.Fprintf(w, "%s has no secret %s: nothing changed\n", c.Environment, c.Name)
					return
				}
				fmt.Fprintf(w, "removed %s's secret %s", c.Environment, c.Name)
				if len(c.Services) > 0 {
					fmt.Fprintf(w, ": running tasks keep it until they are replaced, and the next deployment of %s fails until it is set again or cutover.yaml stops naming it", c.Environment)
				}
				fmt.Fprintln(w)
			})
		}),
	}
}

func newSecretsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list ENV",
		Short: "List a local environment's secrets: names, whether each is set, and which services get it (never the values)",
		Args:  exactArgs(1, "ENV"),
		RunE: g.withManager(func(_ context.Context, m *release.Manager, args []string) error {
			list, err := m.Secrets(args[0])
			return g.show(list, err, func(w io.Writer) {
				if len(list) == 0 {
					fmt.Fprintf(w, "no secrets: no service names one in cutover.yaml (services.NAME.secrets), and none is set for %s\n", args[0])
					return
				}
				fmt.Fprintln(w, "NAME                           SET   SERVICES")
				for _, s := range list {
					set := "no"
					if s.Set {
						set = "yes"
					}
					services := strings.Join(s.Services, ",")
					if services == "" {
						services = "- (no service names it)"
					}
					fmt.Fprintf(w, "%-30s %-5s %s\n", s.Name, set, services)
				}
			})
		}),
	}
}

// secretUse says who gets a secret that was set; when no service does but
// cutover.yaml names one that differs only in case, that one.
func secretUse(c release.SecretChange, named []string) string {
	if len(c.Services) == 0 {
		for _, n := range named {
			if strings.EqualFold(n, c.Name) {
				return fmt.Sprintf("no service names it in cutover.yaml, which names %s: names are case-sensitive (cutover secrets unset %s %s, then cutover secrets set %s %s)",
					n, c.Environment, c.Name, c.Environment, n)
			}
		}
		return "no service names it in cutover.yaml yet: add it to services.NAME.secrets"
	}
	return "given to " + strings.Join(c.Services, ", ") + " from the next deployment on"
}

// shownArg is what may be quoted of an argument that is not a valid name:
// it may be a value typed in its place, so only a name-like one is shown,
// and of NAME=VALUE only NAME.
var shownArgRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func shownArg(a string) string {
	if name, _, ok := strings.Cut(a, "="); ok {
		if shownArgRe.MatchString(name) {
			return fmt.Sprintf("%q", name+"=...")
		}
		return "(not shown)"
	}
	if shownArgRe.MatchString(a) {
		return fmt.Sprintf("%q", a)
	}
	return "(not shown)"
}

// secretArgs checks the arguments of secrets set (value: true) or unset
// before the command runs, so that one holding a value is neither quoted
// in an error nor recorded in the audit log: ENV must be an environment's
// name and NAME a variable's, and a value is never an argument.
func secretArgs(value bool) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		env, name := "ENV", "NAME"
		if len(args) > 0 && config.IsLabel(args[0]) {
			env = args[0]
		}
		if len(args) > 1 && env != "ENV" { // with ENV wrong, the second argument may be the value
			if n, _, _ := strings.Cut(args[1], "="); config.IsVariableName(n) {
				name = n
			}
		}
		usage := cmd.CommandPath() + " " + env + " " + name
		if value {
			usage = `printf %s "$VALUE" | ` + usage + " (or type it at the prompt)"
		}
		if value && len(args) > 2 {
			return release.UsageError{Msg: fmt.Sprintf("%s needs ENV NAME and takes the value on standard input, never as an argument (it would stay in the shell's history and show in ps): %s; "+
				"if the argument was the real value, change it", cmd.CommandPath(), usage)}
		}
		if len(args) != 2 {
			return release.UsageError{Msg: fmt.Sprintf("%s needs ENV NAME (got %s): %s", cmd.CommandPath(), short.Count(len(args), "argument"), usage)}
		}
		if !config.IsLabel(args[0]) {
			return release.UsageError{Msg: fmt.Sprintf("ENV %s is not an environment name (lowercase letters, digits and dashes): %s", shownArg(args[0]), usage)}
		}
		if !config.IsVariableName(args[1]) {
			hint := "letters, digits and _, not starting with a digit"
			if strings.Contains(args[1], "=") {
				hint = "NAME=VALUE is not taken: the value is read from standard input"
				if value {
					hint += "; if that was the real value, it is in the shell's history now: change it"
				}
			}
			return release.UsageError{Msg: fmt.Sprintf("NAME %s is not a variable name (%s): %s", shownArg(args[1]), hint, usage)}
		}
		return nil
	}
}

// readSecret reads a secret's value: from a terminal, a line typed without
// echo; otherwise all of standard input, without one trailing newline.
func readSecret(in *os.File, prompt io.Writer, name string) (string, error) {
	if term.IsTerminal(int(in.Fd())) {
		fmt.Fprintf(prompt, "value of %s (one line, not shown; pipe a multi-line value from a file: cutover secrets set ENV %s < FILE): ", name, name)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the value of %s: %w", name, err)
		}
		return string(b), nil
	}
	b, err := io.ReadAll(io.LimitReader(in, maxSecretSize+1))
	if err != nil {
		return "", fmt.Errorf("reading the value of %s from standard input: %w", name, err)
	}
	if len(b) > maxSecretSize {
		return "", release.UsageError{Msg: fmt.Sprintf("the value of %s on standard input is longer than %d KiB: a secret is a variable's value (for a file, keep it out of cutover and mount it)", name, maxSecretSize>>10)}
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return string(b), nil
}

package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cutoverdev/cutover/internal/release"
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
		Args:  exactArgs(2, "ENV NAME"),
		RunE: g.withManager(func(_ context.Context, m *release.Manager, args []string) error {
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
				fmt.Fprintf(w, "%s %s's secret %s (%s)\n", verb, c.Environment, c.Name, secretUse(c))
			})
		}),
	}
}

func newSecretsUnsetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unset ENV NAME",
		Short: "Remove a secret's value from a local environment",
		Args:  exactArgs(2, "ENV NAME"),
		RunE: g.withManager(func(_ context.Context, m *release.Manager, args []string) error {
			c, err := m.UnsetSecret(args[0], args[1])
			return g.show(c, err, func(w io.Writer) {
				if !c.Removed {
					fmt.Fprintf(w, "%s has no secret %s: nothing changed\n", c.Environment, c.Name)
					return
				}
				fmt.Fprintf(w, "removed %s's secret %s", c.Environment, c.Name)
				if len(c.Services) > 0 {
					fmt.Fprintf(w, ": the next deployment of %s fails until it is set again, or cutover.yaml stops naming it", c.Environment)
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

// secretUse says who gets a secret that was set.
func secretUse(c release.SecretChange) string {
	if len(c.Services) == 0 {
		return "no service names it in cutover.yaml yet: add it to services.NAME.secrets"
	}
	return "given to " + strings.Join(c.Services, ", ") + " from the next deployment on"
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

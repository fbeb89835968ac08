package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/cutoverdev/cutover/internal/release"
)

// completionLimit is how many recent executions `cutover __complete` offers.
const completionLimit = 50

// completeArgs gives every command whose first argument is an environment
// or an execution the completion of that argument, from its Use line, so
// that shell completion (cobra's `cutover completion bash|zsh|fish`) offers
// the environments of cutover.yaml and the project's recent executions.
// It reads; it never creates a store or changes anything.
func completeArgs(g *globals, root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.ValidArgsFunction != nil {
			return
		}
		fields := strings.Fields(c.Use)
		if len(fields) < 2 {
			return
		}
		switch strings.Trim(fields[1], "[]") {
		case "ENV":
			c.ValidArgsFunction = firstArg(func(*cobra.Command) []string { return choices(release.EnvironmentChoices(g.file)) })
		case "EXECUTION":
			c.ValidArgsFunction = firstArg(func(cmd *cobra.Command) []string {
				home, err := release.HomeDir(g.home)
				if err != nil {
					return nil
				}
				return choices(release.ExecutionChoices(cmd.Context(), g.file, home, completionLimit))
			})
		}
	}
	walk(root)
}

func firstArg(list func(cmd *cobra.Command) []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return list(cmd), cobra.ShellCompDirectiveNoFileComp
	}
}

// choices are a shell's completions of release's choices.
func choices(list []release.Choice) []string {
	out := make([]string, 0, len(list))
	for _, c := range list {
		out = append(out, cobra.CompletionWithDesc(c.Value, c.Description))
	}
	return out
}

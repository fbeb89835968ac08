package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cutoverdev/cutover/internal/config"
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
			c.ValidArgsFunction = firstArg(func(*cobra.Command) []string { return environmentNames(g) })
		case "EXECUTION":
			c.ValidArgsFunction = firstArg(func(cmd *cobra.Command) []string { return executionIDs(cmd.Context(), g) })
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

// environmentNames are cutover.yaml's environments, each with what it is.
func environmentNames(g *globals) []string {
	cfg, err := config.Load(g.file)
	if err != nil {
		return nil
	}
	var out []string
	for _, name := range cfg.EnvironmentNames() {
		env := cfg.Environments[name]
		desc := env.Platform
		if desc == "" {
			desc = "local"
		}
		if env.Branch != "" {
			desc += ", branch " + env.Branch
		}
		out = append(out, cobra.CompletionWithDesc(name, desc))
	}
	return out
}

// executionIDs are the project's recent executions, newest first, with
// their branch, commit and status. Without a store there is nothing to offer.
func executionIDs(ctx context.Context, g *globals) []string {
	if ctx == nil {
		ctx = context.Background()
	}
	home, err := release.HomeDir(g.home)
	if err != nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(home, "cutover.db")); err != nil {
		return nil
	}
	var out []string
	_ = withManager(ctx, g, func(m *release.Manager) error {
		list, err := m.Store.ListExecutions(ctx, m.Config.Project, completionLimit)
		if err != nil {
			return err
		}
		for _, x := range list {
			out = append(out, cobra.CompletionWithDesc(x.ID, fmt.Sprintf("%s %s %s", x.Branch, x.Commit[:min(7, len(x.Commit))], x.Status)))
		}
		return nil
	})
	return out
}

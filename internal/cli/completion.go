package cli

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cutoverdev/cutover/internal/release"
)

// completionLimit is how many recent executions `cutover __complete` offers.
const completionLimit = 50

// completeArgs gives every command whose arguments are environments,
// executions or services the completion of those arguments, from its Use
// line, so that shell completion (cobra's `cutover completion
// bash|zsh|fish`) offers the environments of cutover.yaml, the project's
// recent executions and, after an environment, its services. A Use line
// with forms ("logs EXECUTION | logs ENV SERVICE") completes the first
// argument with both forms' choices and the second with the form the first
// argument chose. It reads; it never creates a store or changes anything.
func completeArgs(g *globals, root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.ValidArgsFunction != nil {
			return
		}
		forms := argForms(c.Use)
		if !slices.ContainsFunc(forms, func(f []string) bool { return slices.ContainsFunc(f, completable) }) {
			return // no argument cutover knows (such as man's DIR): the shell completes file names
		}
		c.ValidArgsFunction = func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var out []string
			for _, form := range forms {
				if len(form) > len(args) && g.argsFit(form, args) {
					out = append(out, g.complete(cmd, form, args)...)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
	}
	walk(root)
}

// argForms are the argument placeholders of each form of a Use line:
// "logs EXECUTION | logs ENV SERVICE" is [EXECUTION] and [ENV SERVICE].
// Placeholders are upper case ("[ENV]" is ENV); the first flag or word
// that is not one ends a form.
func argForms(use string) [][]string {
	var forms [][]string
	for _, form := range strings.Split(use, " | ") {
		fields := strings.Fields(form)
		var args []string
		for _, f := range fields[min(1, len(fields)):] {
			f = strings.Trim(f, "[]")
			if f == "" || f != strings.ToUpper(f) || strings.HasPrefix(f, "-") {
				break
			}
			args = append(args, f)
		}
		forms = append(forms, args)
	}
	return forms
}

func completable(placeholder string) bool {
	return placeholder == "ENV" || placeholder == "EXECUTION" || placeholder == "SERVICE" || placeholder == "NAME" // a secret's, under secrets
}

// argsFit says whether the arguments typed so far fit a form's first
// placeholders: an ENV must be an environment of cutover.yaml.
func (g *globals) argsFit(form, args []string) bool {
	for i, a := range args {
		if form[i] == "ENV" && !slices.ContainsFunc(release.EnvironmentChoices(g.file), func(c release.Choice) bool { return c.Value == a }) {
			return false
		}
	}
	return true
}

// complete offers the choices of the form's placeholder after args; a
// SERVICE follows the form's ENV (the services with logs there); the NAME
// of `secrets set|unset ENV NAME` is a secret cutover.yaml names.
func (g *globals) complete(cmd *cobra.Command, form, args []string) []string {
	switch form[len(args)] {
	case "ENV":
		return choices(release.EnvironmentChoices(g.file))
	case "EXECUTION":
		home, err := release.HomeDir(g.home)
		if err != nil {
			return nil
		}
		return choices(release.ExecutionChoices(cmd.Context(), g.file, home, completionLimit))
	case "SERVICE":
		if i := slices.Index(form, "ENV"); i >= 0 && i < len(args) {
			return choices(release.ServiceChoices(g.file, args[i]))
		}
	case "NAME":
		if cmd.Parent() != nil && cmd.Parent().Name() == "secrets" {
			return choices(release.SecretChoices(g.file))
		}
	}
	return nil
}

// choices are a shell's completions of release's choices.
func choices(list []release.Choice) []string {
	out := make([]string, 0, len(list))
	for _, c := range list {
		out = append(out, cobra.CompletionWithDesc(c.Value, c.Description))
	}
	return out
}

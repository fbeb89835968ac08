package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManCmd writes one man page per command (section 1), generated from the
// commands themselves so that they never drift from --help. Hidden: it is
// for packaging (`make man`, the release archives), not for daily use.
func newManCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages of every command into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("man: cannot create %s: %w", dir, err)
			}
			hdr := &doc.GenManHeader{Title: "CUTOVER", Section: "1", Source: "cutover " + Version, Manual: "cutover manual"}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			if err := doc.GenManTree(root, hdr, dir); err != nil {
				return fmt.Errorf("man: writing pages into %s: %w", dir, err)
			}
			return g.print(map[string]string{"dir": dir}, func(w io.Writer) { fmt.Fprintf(w, "man pages written to %s\n", dir) })
		},
	}
}

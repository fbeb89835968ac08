package cli

import (
	"cmp"
	"fmt"
	"io"
	"strings"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/spf13/cobra"
)

func newPruneCmd(g *globals) *cobra.Command {
	var o release.PruneOptions
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove the images of revisions older than the newest N of each environment",
		Long: "Removes the images cutover built for this project that no environment needs: it keeps the\n" +
			"images of the newest revisions of each environment (retention.revisions in cutover.yaml, 5 by\n" +
			"default, or --keep), those a container of the project uses, and those younger than --min-age\n" +
			"(a build may be running). The same pruning runs after each successful `up` and `deploy`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("keep") && o.Keep < 2 {
				return usageError{fmt.Sprintf("--keep %d: keep at least 2 revisions, so a rollback to the previous one needs no rebuild", o.Keep)}
			}
			return withManager(cmd.Context(), g, func(m *release.Manager) error {
				res, err := m.Prune(cmd.Context(), o)
				if err != nil {
					return err
				}
				return g.print(res, func(w io.Writer) {
					verb := "removed"
					if o.DryRun {
						verb = "would remove"
					}
					fmt.Fprintf(w, "%s %d images (%s), kept %d (the newest %d revisions of each environment, images in use or younger than %s)\n",
						verb, len(res.Removed), release.Megabytes(res.FreedBytes), res.Kept, cmp.Or(o.Keep, m.Config.Retention.Revisions), o.MinAge)
					for _, im := range res.Removed {
						fmt.Fprintf(w, "  %s %s\n", shortImage(im.ID), strings.Join(im.Tags, " "))
					}
				})
			})
		},
	}
	cmd.Flags().IntVar(&o.Keep, "keep", 0, "keep the images of the newest N revisions of each environment (default: retention.revisions)")
	cmd.Flags().DurationVar(&o.MinAge, "min-age", release.AutoPruneMinAge, "keep images younger than this (a build may be running)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "list what would be removed, remove nothing")
	return cmd
}

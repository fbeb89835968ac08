package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/spf13/cobra"
)

// autoPruneMinAge keeps the images of builds that may still be running.
const autoPruneMinAge = time.Hour

func newPruneCmd(g *globals) *cobra.Command {
	var (
		keep   int
		minAge time.Duration
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove the images of revisions older than the newest N of each environment",
		Long: "Removes the images cutover built for this project that no environment needs: it keeps the\n" +
			"images of the newest revisions of each environment (retention.revisions in cutover.yaml, 5 by\n" +
			"default, or --keep), those a container of the project uses, and those younger than --min-age\n" +
			"(a build may be running). The same pruning runs after each successful `up` and `deploy`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := openSession(ctx, g, "", false)
			if err != nil {
				return err
			}
			defer s.close()
			if s.rt == nil {
				return usageError{"prune: no environment of " + g.file + " runs on this machine's Docker engine"}
			}
			if !cmd.Flags().Changed("keep") {
				keep = s.cfg.Retention.Revisions
			}
			if keep < 2 {
				return usageError{fmt.Sprintf("--keep %d: keep at least 2 revisions, so a rollback to the previous one needs no rebuild", keep)}
			}
			res, err := local.Prune(ctx, s.rt, s.store, local.PruneOptions{Project: s.cfg.Project, Environments: s.cfg.EnvironmentNames(),
				Keep: keep, MinAge: minAge, DryRun: dryRun})
			if err != nil {
				return err
			}
			return g.print(res, func(w io.Writer) {
				verb := "removed"
				if dryRun {
					verb = "would remove"
				}
				fmt.Fprintf(w, "%s %d images (%s), kept %d (the newest %d revisions of each environment, images in use or younger than %s)\n",
					verb, len(res.Removed), megabytes(res.FreedBytes), res.Kept, keep, minAge)
				for _, im := range res.Removed {
					fmt.Fprintf(w, "  %s %s\n", shortImage(im.ID), strings.Join(im.Tags, " "))
				}
			})
		},
	}
	cmd.Flags().IntVar(&keep, "keep", 0, "keep the images of the newest N revisions of each environment (default: retention.revisions)")
	cmd.Flags().DurationVar(&minAge, "min-age", autoPruneMinAge, "keep images younger than this (a build may be running)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed, remove nothing")
	return cmd
}

// retain runs the automatic retention after a successful deployment: the
// images of revisions older than retention.revisions go. A failure to prune
// does not fail the deployment; it is reported on stderr.
func retain(ctx context.Context, g *globals, s *session) {
	res, err := local.Prune(context.WithoutCancel(ctx), s.rt, s.store, local.PruneOptions{Project: s.cfg.Project,
		Environments: s.cfg.EnvironmentNames(), Keep: s.cfg.Retention.Revisions, MinAge: autoPruneMinAge})
	switch {
	case err != nil:
		fmt.Fprintf(g.stderr, "warning: removing the images of old revisions: %v (run `cutover prune` to retry)\n", err)
	case len(res.Removed) > 0:
		fmt.Fprintf(g.stderr, "removed %d images of revisions older than the newest %d (%s)\n", len(res.Removed), s.cfg.Retention.Revisions, megabytes(res.FreedBytes))
	}
}

func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

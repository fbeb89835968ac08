package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/cutoverdev/cutover/internal/atomicfile"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/spf13/cobra"
)

type initCmd struct {
	compose string
	force   bool
}

func newInitCmd(g *globals) *cobra.Command {
	c := &initCmd{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a cutover.yaml from the repository's docker-compose.yml",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := os.Stat(g.file); err == nil && !c.force {
				return fmt.Errorf("%s already exists; not overwriting it (pass --force to replace it)", g.file)
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			cfg, notes, err := config.FromCompose(cmd.Context(), c.compose)
			if err != nil {
				return err
			}
			data, err := config.Marshal(cfg)
			if err != nil {
				return err
			}
			if err := atomicfile.Write(g.file, data, 0o644); err != nil {
				return err
			}
			res := struct {
				File     string   `json:"file"`
				Compose  string   `json:"compose"`
				Services []string `json:"services"`
				Notes    []string `json:"notes"`
			}{g.file, c.compose, cfg.ServiceNames(), notes}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "wrote %s from %s: %d services\n", g.file, c.compose, len(res.Services))
				for _, n := range notes {
					fmt.Fprintf(w, "  note: %s\n", n)
				}
			})
		},
	}
	cmd.Flags().StringVar(&c.compose, "compose", "docker-compose.yml", "compose file to read")
	cmd.Flags().BoolVar(&c.force, "force", false, "overwrite an existing cutover.yaml")
	return cmd
}

package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/spf13/cobra"
)

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check cutover.yaml and report every problem with its file, line and field",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(g.file)
			if err != nil {
				var probs config.Problems
				if g.json() && errors.As(err, &probs) {
					_ = g.print(struct {
						Valid    bool            `json:"valid"`
						Problems config.Problems `json:"problems"`
					}{false, probs}, nil)
				}
				return err
			}
			res := struct {
				Valid        bool     `json:"valid"`
				File         string   `json:"file"`
				Project      string   `json:"project"`
				Services     []string `json:"services"`
				Environments []string `json:"environments"`
			}{true, g.file, cfg.Project, cfg.ServiceNames(), cfg.EnvironmentNames()}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s is valid: project %s, %d services, %d environments\n", g.file, cfg.Project, len(res.Services), len(res.Environments))
			})
		},
	}
}

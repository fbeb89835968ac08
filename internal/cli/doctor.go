package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/doctor"
	"github.com/spf13/cobra"
)

func newDoctorCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check Docker (API version), git, listener ports, disk, the proxy, the registry and the store, with a fix for each problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			cfg, cfgErr := config.Load(g.file)
			checks := doctor.Run(cmd.Context(), doctor.Options{Home: home, Config: cfg, ConfigErr: cfgErr})
			res := struct {
				OK     bool           `json:"ok"`
				Checks []doctor.Check `json:"checks"`
			}{!doctor.Failed(checks), checks}
			if err := g.print(res, func(w io.Writer) {
				for _, c := range checks {
					fmt.Fprintf(w, "%-4s %-22s %s\n", c.Status, c.Name, c.Detail)
					if c.Fix != "" {
						fmt.Fprintf(w, "     %-22s fix: %s\n", "", c.Fix)
					}
				}
			}); err != nil {
				return err
			}
			if !res.OK {
				return errors.New("doctor: some checks failed (see the fixes above)")
			}
			return nil
		},
	}
}

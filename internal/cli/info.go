package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/doctor"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print cutover's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := struct {
				Version string `json:"version"`
				Go      string `json:"go"`
				OS      string `json:"os"`
				Arch    string `json:"arch"`
			}{Version, runtime.Version(), runtime.GOOS, runtime.GOARCH}
			return g.print(v, func(w io.Writer) { fmt.Fprintf(w, "cutover %s (%s %s/%s)\n", v.Version, v.Go, v.OS, v.Arch) })
		},
	}
}

func newSchemaCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of cutover.yaml (for editor completion)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := config.Schema()
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(append(b, '\n'))
			return err
		},
	}
}

// newManCmd writes one man page per command (section 1), generated from the
// commands themselves so that they never drift from --help. Hidden: it is
// for packaging (`make man`, the release archives), not for daily use.
func newManCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages of every command into DIR",
		Hidden: true,
		Args:   exactArgs(1, "DIR"),
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

func newDoctorCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check Docker (API version), git, listener ports, disk, the proxy, the registry and the store, with a fix for each problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := release.HomeDir(g.home)
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

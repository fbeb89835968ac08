package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/export"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/short"
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
				fmt.Fprintf(w, "%s is valid: project %s, %s, %s\n", g.file, cfg.Project, short.Count(len(res.Services), "service"), short.Count(len(res.Environments), "environment"))
			})
		},
	}
}

func newInitCmd(g *globals) *cobra.Command {
	var compose string
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a cutover.yaml from the repository's docker-compose.yml",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, notes, err := config.WriteFromCompose(cmd.Context(), g.file, compose, force)
			if err != nil {
				return err
			}
			res := struct {
				File     string   `json:"file"`
				Compose  string   `json:"compose"`
				Services []string `json:"services"`
				Notes    []string `json:"notes"`
			}{g.file, compose, cfg.ServiceNames(), notes}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "wrote %s from %s: %s\n", g.file, compose, short.Count(len(res.Services), "service"))
				for _, n := range notes {
					fmt.Fprintf(w, "  note: %s\n", n)
				}
			})
		},
	}
	cmd.Flags().StringVar(&compose, "compose", "docker-compose.yml", "compose file to read")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing cutover.yaml")
	return cmd
}

func newExportCmd(g *globals) *cobra.Command {
	var outDir string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export cutover.yaml as infrastructure code for other platforms",
		Args:  cobra.NoArgs,
		// `--output DIR` names the templates' directory, as in `cutover export
		// cloudformation --output cf`; `--output text|json` keeps its meaning
		// everywhere (the report's format), and --dir is the unambiguous form.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" {
				outDir, g.output = g.output, "text"
			}
			return nil
		},
	}
	cmd.AddCommand(newExportCloudFormationCmd(g, &outDir))
	return cmd
}

func newExportCloudFormationCmd(g *globals, outDir *string) *cobra.Command {
	var dir, format string
	cmd := &cobra.Command{
		Use:     "cloudformation",
		Short:   "Write CloudFormation templates of the AWS architecture (VPC, ALB, ECS Fargate, ECR, CodePipeline, CodeDeploy, alarms)",
		Long:    export.CloudFormationHelp,
		Example: "  cutover export cloudformation --output cf\n  cutover export cloudformation --dir cf --format json --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "yaml" && format != "json" {
				return release.UsageError{Msg: fmt.Sprintf("--format: %q is not a template format (use yaml or json)", format)}
			}
			if *outDir != "" {
				if cmd.Flags().Changed("dir") && dir != *outDir {
					return release.UsageError{Msg: fmt.Sprintf("--output %s and --dir %s name two directories: give one", *outDir, dir)}
				}
				dir = *outDir
			}
			cfg, err := config.Load(g.file)
			if err != nil {
				return err
			}
			res, err := export.WriteCloudFormation(cfg, dir, format)
			if err != nil {
				return err
			}
			return g.print(struct {
				Templates []export.Written `json:"templates"`
			}{res}, func(w io.Writer) {
				for _, r := range res {
					fmt.Fprintf(w, "%s: %d resources (stack %s)\n", r.Path, r.Resources, r.Stack)
				}
			})
		},
	}
	cmd.Flags().StringVarP(&dir, "dir", "d", "cloudformation", "directory to write the templates into (--output DIR works too, unless DIR is text or json: those set the report's format)")
	cmd.Flags().StringVar(&format, "format", "yaml", "template format: yaml or json")
	return cmd
}

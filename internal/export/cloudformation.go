// Package export turns a cutover.yaml into CloudFormation templates for the
// seeds' AWS architecture: a shared template (VPC over two AZs, VPC endpoints,
// ECR repositories, KMS keys), one application template per environment (ALB,
// target groups, ECS cluster and Fargate services, roles, alarms) and a
// pipeline template (CodeBuild, CodeDeploy, CodePipeline V2, notifications).
//
// The templates are built with goformation's typed resources so that a
// misspelt property is a compile error rather than a failed stack. The
// templates reference each other through CloudFormation exports named
// "<project>-<Name>", so they must be deployed in order: shared, then each
// app-<environment>, then pipeline.
package export

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/tags"
	"github.com/cutoverdev/cutover/internal/atomicfile"
	"github.com/cutoverdev/cutover/internal/config"
)

// File is one generated template and the stack name it is meant for.
type File struct {
	Name     string // file name without extension, such as "app-production"
	Stack    string // suggested stack name, such as "bluemed-app-production"
	Template *cloudformation.Template
}

// Templates builds every template for cfg, in deployment order.
func Templates(cfg *config.Config) ([]File, error) {
	if cfg == nil || cfg.Project == "" || len(cfg.Services) == 0 || len(cfg.Environments) == 0 {
		return nil, fmt.Errorf("cutover.yaml needs a project, services and environments to export CloudFormation")
	}
	g := &gen{cfg: cfg, project: cfg.Project}
	if len(g.containers()) == 0 {
		return nil, fmt.Errorf("every service of cutover.yaml is static: the templates describe an ECS application with a load balancer; keep at least one service without static")
	}
	if err := g.checkSecrets(); err != nil {
		return nil, err
	}
	files := []File{{Name: "shared", Template: g.shared()}}
	for _, env := range g.envOrder() {
		files = append(files, File{Name: "app-" + env, Template: g.app(env)})
	}
	files = append(files, File{Name: "pipeline", Template: g.pipeline()})
	for i := range files {
		files[i].Stack = cfg.Project + "-" + files[i].Name
	}
	return files, nil
}

// Write renders files into dir as "<name>.yaml" or "<name>.json" (format
// "yaml" or "json") and returns the paths written.
func Write(dir, format string, files []File) ([]string, error) {
	if format != "yaml" && format != "json" {
		return nil, fmt.Errorf("template format %q is not supported (use yaml or json)", format)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the output directory %s: %v", dir, err)
	}
	var paths []string
	for _, f := range files {
		b, err := Render(f.Template, format)
		if err != nil {
			return nil, fmt.Errorf("rendering template %s: %v", f.Name, err)
		}
		p := filepath.Join(dir, f.Name+"."+format)
		if err := atomicfile.Write(p, b, 0o644); err != nil {
			return nil, fmt.Errorf("cannot write %s: %v", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// Render returns a template as JSON or YAML.
func Render(t *cloudformation.Template, format string) ([]byte, error) {
	if format == "json" {
		return t.JSON()
	}
	return t.YAML()
}

// gen holds what every template builder needs.
type gen struct {
	cfg     *config.Config
	project string
}

// envOrder lists environments so that an environment comes after the one it
// promotes from (staging before production), then by name.
func (g *gen) envOrder() []string {
	names := g.cfg.EnvironmentNames()
	depth := func(n string) int {
		d := 0
		for e := g.cfg.Environments[n]; e != nil && e.PromoteFrom != "" && d < len(names); d++ {
			e = g.cfg.Environments[e.PromoteFrom]
		}
		return d
	}
	slices.SortStableFunc(names, func(a, b string) int { return depth(a) - depth(b) })
	return names
}

func (g *gen) blueGreen(env string) bool {
	return g.cfg.Environments[env].Strategy.Type == config.StrategyBlueGreen
}

// native says whether an environment's blue/green runs on ECS itself
// (ecs.blue_green: ecs) rather than through CodeDeploy.
func (g *gen) native(env string) bool {
	return g.blueGreen(env) && g.cfg.Environments[env].ECS.BlueGreenEngine() == config.BlueGreenECS
}

// viaCodeDeploy says whether an environment's blue/green runs through CodeDeploy.
func (g *gen) viaCodeDeploy(env string) bool { return g.blueGreen(env) && !g.native(env) }

// export names a value shared between stacks.
func (g *gen) export(name string) string { return g.project + "-" + name }

// imp imports a value exported by another of the templates.
func (g *gen) imp(name string) string { return cloudformation.ImportValue(g.export(name)) }

func (g *gen) output(t *cloudformation.Template, name, value string) {
	t.Outputs[name] = cloudformation.Output{Value: value, Export: &cloudformation.Export{Name: g.export(name)}}
}

func (g *gen) tags(extra ...string) []tags.Tag {
	ts := []tags.Tag{{Key: "dev.cutover.project", Value: g.project}}
	for i := 0; i+1 < len(extra); i += 2 {
		ts = append(ts, tags.Tag{Key: extra[i], Value: extra[i+1]})
	}
	return ts
}

// logicalID turns names such as "back-end" into CloudFormation logical-ID
// parts ("BackEnd"), which allow only letters and digits.
func logicalID(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		up := true
		for _, r := range p {
			switch {
			case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9':
				if up && r >= 'a' && r <= 'z' {
					r -= 'a' - 'A'
				}
				b.WriteRune(r)
				up = false
			default:
				up = true
			}
		}
	}
	return b.String()
}

// skip is checkov's suppression metadata: each entry is a check id and the
// reason it does not apply, which checkov prints next to the skipped check.
func skip(idReason ...string) map[string]any {
	var list []map[string]string
	for i := 0; i+1 < len(idReason); i += 2 {
		list = append(list, map[string]string{"id": idReason[i], "comment": idReason[i+1]})
	}
	return map[string]any{"checkov": map[string]any{"skip": list}}
}

// policy is an IAM policy document.
func policy(statements ...map[string]any) map[string]any {
	return map[string]any{"Version": "2012-10-17", "Statement": statements}
}

func allow(actions []string, resources ...any) map[string]any {
	return map[string]any{"Effect": "Allow", "Action": actions, "Resource": resources}
}

func assumeRole(service string) map[string]any {
	return policy(map[string]any{
		"Effect":    "Allow",
		"Principal": map[string]any{"Service": service},
		"Action":    "sts:AssumeRole",
	})
}

func sub(s string) string { return cloudformation.Sub(s) }

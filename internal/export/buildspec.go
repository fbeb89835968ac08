package export

import (
	"fmt"

	"github.com/cutoverdev/cutover/internal/config"
	"gopkg.in/yaml.v3"
)

// installCutover fetches the cutover binary the pipeline runs; its URL is a
// pipeline parameter so that a team pins the version it tested.
var installCutover = []string{
	`curl -fsSL "$CUTOVER_DOWNLOAD_URL" -o /usr/local/bin/cutover`,
	`chmod +x /usr/local/bin/cutover`,
	`cutover version`,
}

// buildspec renders a CodeBuild buildspec (version 0.2).
func buildspec(commands []string, extra map[string]any) string {
	spec := map[string]any{
		"version": "0.2",
		"phases": map[string]any{
			"install": map[string]any{"commands": installCutover},
			"build":   map[string]any{"commands": commands},
		},
	}
	for k, v := range extra {
		spec[k] = v
	}
	b, err := yaml.Marshal(spec)
	if err != nil {
		// Only maps, slices and strings are marshalled: this cannot fail.
		return ""
	}
	return string(b)
}

// buildSpec validates cutover.yaml, builds and pushes every service's image
// tagged with the commit, and writes one artifact per service with what the
// ECS and CodeDeployToECS deploy actions read.
func (g *gen) buildSpec() string {
	cmds := []string{
		"cutover validate",
		`aws ecr get-login-password | docker login --username AWS --password-stdin "$REGISTRY"`,
		`TAG="$CODEBUILD_RESOLVED_SOURCE_VERSION"`,
		`export CUTOVER_BUILD_ID="$TAG"`,
	}
	var primary map[string]any
	secondary := map[string]any{}
	for _, name := range g.cfg.ServiceNames() {
		s := g.cfg.Services[name]
		image := fmt.Sprintf(`$REGISTRY/%s/%s:$TAG`, g.project, name)
		if s.Build == nil {
			continue // a prebuilt image is deployed as is
		}
		ctx := s.Build.Context
		if ctx == "" {
			ctx = "."
		}
		for _, c := range s.Build.Commands {
			cmds = append(cmds, fmt.Sprintf("(cd %q && %s)", ctx, c))
		}
		dockerfile := s.Build.Dockerfile
		if dockerfile == "" {
			dockerfile = "Dockerfile"
		}
		out := "out/" + name
		cmds = append(cmds,
			fmt.Sprintf(`docker build -t "%s" -f %q %q`, image, ctx+"/"+dockerfile, ctx),
			fmt.Sprintf(`docker push "%s"`, image),
			fmt.Sprintf(`mkdir -p %s && printf '[{"name":"%s","imageUri":"%%s"}]' "%s" > %s/imagedefinitions.json`, out, name, image, out),
			fmt.Sprintf(`printf '{"ImageURI":"%%s"}' "%s" > %s/imageDetail.json`, image, out),
			fmt.Sprintf(`printf 'version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: <TASK_DEFINITION>\n        LoadBalancerInfo:\n          ContainerName: %s\n          ContainerPort: %d\n' > %s/appspec.yaml`, name, s.Port, out),
		)
		for _, env := range g.envOrder() {
			if g.blueGreen(env) {
				// CodeDeployToECS registers a revision of the environment's task
				// definition with the new image in place of <IMAGE1_NAME>.
				cmds = append(cmds, fmt.Sprintf(`aws ecs describe-task-definition --task-definition "%s-%s-%s" --query taskDefinition | jq '{family,taskRoleArn,executionRoleArn,networkMode,containerDefinitions,requiresCompatibilities,cpu,memory} | .containerDefinitions[0].image = "<IMAGE1_NAME>"' > %s/taskdef-%s.json`, g.project, env, name, out, env))
			}
		}
		secondary[artifactName(name)] = map[string]any{"base-directory": out, "files": []string{"**/*"}}
		if primary == nil {
			// With one output artifact CodePipeline takes the primary
			// artifacts; with several, the secondary ones by name.
			primary = map[string]any{"base-directory": out, "files": []string{"**/*"}}
		}
	}
	if primary == nil {
		return buildspec(cmds, nil)
	}
	primary["secondary-artifacts"] = secondary
	return buildspec(cmds, map[string]any{"artifacts": primary})
}

// testSpec runs cutover's own pipeline for the commit as a pull request
// would: the build and test actions of cutover.yaml, and its integration
// action (docker compose inside CodeBuild's privileged Docker).
func (g *gen) testSpec(kind string) string {
	cmds := []string{}
	if kind == config.ActionTest {
		for _, st := range g.stages() {
			for _, a := range st.Actions {
				if a.Kind == config.ActionBuild || a.Kind == config.ActionTest {
					dir := "."
					if s := g.cfg.Services[a.Service]; s != nil && s.Build != nil && s.Build.Context != "" {
						dir = s.Build.Context
					}
					for _, c := range a.Commands {
						cmds = append(cmds, fmt.Sprintf("(cd %q && %s)", dir, c))
					}
				}
			}
		}
		if len(cmds) == 0 {
			cmds = append(cmds, "cutover validate")
		}
		return buildspec(cmds, nil)
	}
	return buildspec([]string{`cutover run --repo . --kind pull_request --branch "$BRANCH" --commit "$CODEBUILD_RESOLVED_SOURCE_VERSION"`}, nil)
}

// verifySpec checks a deployed environment through its load balancer with
// the verify checks of cutover.yaml.
func (g *gen) verifySpec(env string) string {
	cmds := []string{`ENDPOINT=$(aws elbv2 describe-load-balancers --load-balancer-arns "$LOAD_BALANCER_ARN" --query 'LoadBalancers[0].DNSName' --output text)`}
	for _, st := range g.stages() {
		for _, a := range st.Actions {
			if a.Kind != config.ActionVerify || a.Environment != env {
				continue
			}
			for _, c := range a.Checks {
				cmd := fmt.Sprintf(`curl -fsS --max-time 10 "https://$ENDPOINT%s"`, c.Path)
				for _, k := range sortedKeys(c.Headers) {
					cmd += fmt.Sprintf(" -H %q", k+": "+c.Headers[k])
				}
				if c.ExpectBody != "" {
					cmd += fmt.Sprintf(" | grep -F -- %q", c.ExpectBody)
				}
				cmds = append(cmds, cmd)
			}
		}
	}
	if len(cmds) == 1 {
		cmds = append(cmds, `curl -fsS --max-time 10 "https://$ENDPOINT/"`)
	}
	return buildspec(cmds, nil)
}

func (g *gen) stages() []config.Stage {
	if g.cfg.Pipeline == nil {
		return nil
	}
	return g.cfg.Pipeline.Stages
}

func artifactName(service string) string { return "Build" + logicalID(service) }

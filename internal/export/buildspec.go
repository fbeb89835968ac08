package export

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cutoverdev/cutover/internal/config"
	ecsplatform "github.com/cutoverdev/cutover/internal/platform/ecs"
	"gopkg.in/yaml.v3"
)

// installCutover fetches the cutover binary the pipeline runs; its URL and
// SHA-256 are pipeline parameters so that a team pins the version it tested,
// and a binary that does not match the checksum never runs.
var installCutover = []string{
	`curl -fsSL "$CUTOVER_DOWNLOAD_URL" -o /usr/local/bin/cutover`,
	`echo "$CUTOVER_SHA256  /usr/local/bin/cutover" | sha256sum -c -`,
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
// ECS and CodeDeployToECS deploy actions read, naming the image by digest.
//
// Repositories have immutable tags and ECR refuses a tag pushed twice, even
// for the same digest: a commit whose image exists already (a retried run, or
// the commit promoted from develop to main) is not built again; its image is
// deployed as it is, by digest (build once, promote the same image).
func (g *gen) buildSpec() string {
	cmds := []string{
		"cutover validate",
		`aws ecr get-login-password | docker login --username AWS --password-stdin "$REGISTRY"`,
		`TAG="$CODEBUILD_RESOLVED_SOURCE_VERSION"`,
		`export CUTOVER_BUILD_ID="$TAG"`,
	}
	var primary map[string]any
	secondary := map[string]any{}
	artifact := func(name, dir string) {
		secondary[artifactName(name)] = map[string]any{"base-directory": dir, "files": []string{"**/*"}}
		if primary == nil {
			// With one output artifact CodePipeline takes the primary
			// artifacts; with several, the secondary ones by name.
			primary = map[string]any{"base-directory": dir, "files": []string{"**/*"}}
		}
	}
	for _, name := range g.cfg.ServiceNames() {
		s := g.cfg.Services[name]
		repo := g.project + "/" + name
		image := fmt.Sprintf(`$REGISTRY/%s:$TAG`, repo)
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
		if s.Static != nil {
			// A static service's artifact is its built files (static.dir),
			// which the deploy stage puts in the site's bucket; no image.
			out := "out/" + name
			cmds = append(cmds, fmt.Sprintf(`mkdir -p %s && cp -R %q/. %s/`, out, ctx+"/"+s.Static.Dir, out))
			artifact(name, out)
			continue
		}
		dockerfile := s.Build.Dockerfile
		if dockerfile == "" {
			dockerfile = "Dockerfile"
		}
		out := "out/" + name
		digest := fmt.Sprintf(`aws ecr describe-images --repository-name %q --image-ids imageTag="$TAG" --query 'imageDetails[0].imageDigest' --output text`, repo)
		pinned := fmt.Sprintf(`$REGISTRY/%s@$DIGEST`, repo)
		cmds = append(cmds,
			fmt.Sprintf(`if DIGEST=$(%s 2>/dev/null); then echo "%s:$TAG exists ($DIGEST): deploying it as it is"; else docker build -t "%s" -f %q %q && docker push "%s" && DIGEST=$(%s); fi`,
				digest, repo, image, ctx+"/"+dockerfile, ctx, image, digest),
			fmt.Sprintf(`mkdir -p %s && printf '[{"name":"%s","imageUri":"%%s"}]' "%s" > %s/imagedefinitions.json`, out, name, pinned, out),
			fmt.Sprintf(`printf '{"ImageURI":"%%s"}' "%s" > %s/imageDetail.json`, pinned, out),
		)
		for _, env := range g.envOrder() {
			if g.viaCodeDeploy(env) {
				// The AppSpec of the environment, with its lambda_hooks
				// (CodeDeploy events only); the deploy action puts the task
				// definition it registers in place of <TASK_DEFINITION>.
				cmds = append(cmds, fmt.Sprintf(`printf '%%s' '%s' > %s/appspec-%s.json`, shellQuoted(g.appSpec(env, name)), out, env))
				// CodeDeployToECS registers a revision of the environment's task
				// definition with the new image in place of <IMAGE1_NAME>.
				// cutover.yaml's environment variables are set here: the
				// stack's task definition is only the bootstrap.
				cmds = append(cmds, fmt.Sprintf(`aws ecs describe-task-definition --task-definition "%s-%s-%s" --query taskDefinition | jq '{family,taskRoleArn,executionRoleArn,networkMode,containerDefinitions,requiresCompatibilities,cpu,memory} | .containerDefinitions[0].image = "<IMAGE1_NAME>" | .containerDefinitions[0].environment = %s | .containerDefinitions[0].secrets = %s' > %s/taskdef-%s.json`, g.project, env, name, pairsJSON(s.Env, "value"), pairsJSON(g.secrets(env, name), "valueFrom"), out, env))
			}
		}
		artifact(name, out)
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

// verifySpec checks a deployed environment with the verify checks of
// cutover.yaml at its domain ($DOMAIN, the app stack's DomainName): the
// HTTPS certificate is for that name, not for the load balancer's DNS name.
func (g *gen) verifySpec(env string) string {
	cmds := []string{`test -n "$DOMAIN"`}
	for _, st := range g.stages() {
		for _, a := range st.Actions {
			if a.Kind != config.ActionVerify || a.Environment != env {
				continue
			}
			for _, c := range a.Checks {
				cmd := fmt.Sprintf(`curl -fsS --max-time 10 "https://$DOMAIN%s"`, c.Path)
				for _, k := range slices.Sorted(maps.Keys(c.Headers)) {
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
		cmds = append(cmds, `curl -fsS --max-time 10 "https://$DOMAIN/"`)
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

// appSpec is the CodeDeploy AppSpec of a service in an environment, as
// cutover deploy itself writes it (ecs.AppSpec), hooks included.
func (g *gen) appSpec(env, name string) string {
	hooks := map[string]string{}
	if x := g.cfg.Environments[env].ECS; x != nil {
		for event, fn := range x.LambdaHooks {
			if slices.Contains(ecsplatform.AppSpecHooks, event) {
				hooks[event] = fn
			}
		}
	}
	// No network: the stack's service has the stack's subnets, which
	// CodeDeploy keeps.
	spec, err := ecsplatform.AppSpec("<TASK_DEFINITION>", name, g.cfg.Services[name].Port, hooks, nil)
	if err != nil {
		return "" // only known hook names are passed: cannot happen
	}
	return spec
}

// shellQuoted makes s safe inside a single-quoted shell word.
func shellQuoted(s string) string { return strings.ReplaceAll(s, "'", `'\''`) }

// pairsJSON is a container's environment (valueKey "value") or secrets
// ("valueFrom") in the task definition's JSON shape, quoted for a
// single-quoted shell word.
func pairsJSON(m map[string]string, valueKey string) string {
	list := []map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		list = append(list, map[string]string{"name": k, valueKey: m[k]})
	}
	b, _ := json.Marshal(list)
	return shellQuoted(string(b))
}

package config

import (
	"strings"
	"testing"
)

func codeDeployYAML(strategy, codedeploy, backend, frontend string) string {
	return `version: 1
project: shop
services:
  backend: { image: shop/backend:1, port: 3001, route: { path_prefix: /api } }
  frontend: { image: shop/frontend:1, port: 3000, route: { path_prefix: / } }
environments:
  production:
    platform: ecs
    strategy: { type: ` + strategy + ` }
    ecs:
      cluster: production
      subnets: [subnet-1]
      ` + codedeploy + `
      services:
        backend: { ` + backend + ` }
        frontend: { ` + frontend + ` }
`
}

// TestCodeDeployGroupPerService: CodeDeploy has one deployment group per ECS
// service; each service gets its own, ENV-SERVICE by default.
func TestCodeDeployGroupPerService(t *testing.T) {
	c, err := Parse("cutover.yaml", []byte(codeDeployYAML("blue_green", "codedeploy: { application: shop }", "deployment_group: prod-api", "")))
	if err != nil {
		t.Fatal(err)
	}
	x := c.Environments["production"].ECS
	if got := x.DeploymentGroupOf("production", "backend") + " " + x.DeploymentGroupOf("production", "frontend"); got != "prod-api production-frontend" {
		t.Errorf("deployment groups %s", got)
	}
}

// TestCodeDeployGroupMistakes: one group for several services, two services
// in one group, and a group on a rolling environment are refused.
func TestCodeDeployGroupMistakes(t *testing.T) {
	cases := []struct{ src, want string }{
		{codeDeployYAML("blue_green", "codedeploy: { application: shop, deployment_group: production }", "", ""),
			`environments.production.ecs.codedeploy.deployment_group: "production" would deploy every service through one deployment group`},
		{codeDeployYAML("blue_green", "codedeploy: { application: shop }", "deployment_group: web", "deployment_group: web"),
			`environments.production.ecs.services.frontend.deployment_group: "web" is also the deployment group of service backend`},
		{codeDeployYAML("blue_green", "codedeploy: { application: shop }", "deployment_group: production-frontend", ""),
			`"production-frontend" is also the deployment group of service backend`},
		{codeDeployYAML("rolling", "", "deployment_group: api", ""),
			`environments.production.ecs.services.backend.deployment_group: is only used by CodeDeploy blue/green`},
	}
	for _, c := range cases {
		_, err := Parse("cutover.yaml", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v\nwant %s", err, c.want)
		}
	}
}

// TestECSFromStack: with ecs.stack, what the app stack's outputs give
// (cluster, subnets, services, CodeDeploy application) may be left out.
func TestECSFromStack(t *testing.T) {
	src := `version: 1
project: shop
services:
  backend: { image: shop/backend:1, port: 3001 }
environments:
  production:
    platform: ecs
    strategy: { type: blue_green }
    ecs: { region: eu-west-1, stack: shop-app-production }
`
	if _, err := Parse("cutover.yaml", []byte(src)); err != nil {
		t.Fatal(err)
	}
	_, err := Parse("cutover.yaml", []byte(strings.Replace(src, "stack: shop-app-production", "cluster: production", 1)))
	if err == nil || !strings.Contains(err.Error(), "environments.production.ecs.subnets: missing") || !strings.Contains(err.Error(), "environments.production.ecs.codedeploy: missing") {
		t.Errorf("without a stack: %v", err)
	}
}

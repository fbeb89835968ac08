package export

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
)

const bluemed = "../../examples/bluemed/cutover.yaml"

func loadBluemed(t *testing.T) []File {
	t.Helper()
	cfg, err := config.Load(bluemed)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Templates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// rendered returns a template as generic JSON, the way CloudFormation sees it.
func rendered(t *testing.T, f File) map[string]any {
	t.Helper()
	b, err := Render(f.Template, "json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func resourcesOfType(m map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range m["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] == typ {
			props, _ := res["Properties"].(map[string]any)
			out[id] = props
		}
	}
	return out
}

func TestTemplatesAndResourceCounts(t *testing.T) {
	files := loadBluemed(t)
	var names []string
	byName := map[string]map[string]any{}
	for _, f := range files {
		names = append(names, f.Name)
		byName[f.Name] = rendered(t, f)
	}
	if got := strings.Join(names, ","); got != "shared,app-staging,app-production,pipeline" {
		t.Fatalf("templates = %s, want shared, then staging before production (promotion order), then pipeline", got)
	}
	counts := []struct {
		file, typ string
		want      int
	}{
		{"shared", "AWS::EC2::Subnet", 4},
		{"shared", "AWS::EC2::VPCEndpoint", 6},
		{"shared", "AWS::ECR::Repository", 2},
		{"shared", "AWS::KMS::Key", 2},
		{"app-staging", "AWS::ElasticLoadBalancingV2::TargetGroup", 2},    // rolling: one per service
		{"app-production", "AWS::ElasticLoadBalancingV2::TargetGroup", 4}, // blue and green per service
		{"app-staging", "AWS::ElasticLoadBalancingV2::Listener", 1},
		{"app-production", "AWS::ElasticLoadBalancingV2::Listener", 1},     // no test listener: bluemed has no test traffic hooks
		{"app-production", "AWS::ElasticLoadBalancingV2::ListenerRule", 2}, // one production rule per service
		{"app-production", "AWS::ECS::Cluster", 1},
		{"app-production", "AWS::ECS::Service", 2},
		{"app-production", "AWS::ECS::TaskDefinition", 2},
		{"app-production", "AWS::CloudWatch::Alarm", 14},    // 6 per service, and one per canary
		{"pipeline", "AWS::CodeDeploy::DeploymentGroup", 2}, // production services only
		{"pipeline", "AWS::CodeBuild::Project", 5},
		{"pipeline", "AWS::CodePipeline::Pipeline", 2}, // main → staging → production; develop → staging
		{"pipeline", "AWS::CodeStarNotifications::NotificationRule", 2},
	}
	for _, c := range counts {
		if got := len(resourcesOfType(byName[c.file], c.typ)); got != c.want {
			t.Errorf("%s: %d %s, want %d", c.file, got, c.typ, c.want)
		}
	}
	// The VPC endpoints that let tasks run without NAT.
	var services []string
	for _, p := range resourcesOfType(byName["shared"], "AWS::EC2::VPCEndpoint") {
		services = append(services, p["ServiceName"].(map[string]any)["Fn::Sub"].(string))
	}
	for _, want := range []string{".ecr.api", ".ecr.dkr", ".s3", ".logs", ".ssm", ".secretsmanager"} {
		if !strings.Contains(strings.Join(services, " ")+" ", want+" ") {
			t.Errorf("no VPC endpoint for %s in %v", want, services)
		}
	}
}

func TestDeploymentControllers(t *testing.T) {
	for _, f := range loadBluemed(t) {
		if !strings.HasPrefix(f.Name, "app-") {
			continue
		}
		for id, p := range resourcesOfType(rendered(t, f), "AWS::ECS::Service") {
			ctl := p["DeploymentController"].(map[string]any)["Type"]
			switch f.Name {
			case "app-production": // blue_green
				if ctl != "CODE_DEPLOY" || p["DeploymentConfiguration"] != nil {
					t.Errorf("%s %s: controller %v with %v, want CODE_DEPLOY", f.Name, id, ctl, p["DeploymentConfiguration"])
				}
			case "app-staging": // rolling
				dc := p["DeploymentConfiguration"].(map[string]any)
				cb := dc["DeploymentCircuitBreaker"].(map[string]any)
				if ctl != "ECS" || cb["Enable"] != true || cb["Rollback"] != true {
					t.Errorf("%s %s: controller %v, circuit breaker %v; want ECS with enable and rollback", f.Name, id, ctl, cb)
				}
				if a := dc["Alarms"].(map[string]any); len(a["AlarmNames"].([]any)) == 0 {
					t.Errorf("%s %s: no deployment alarms", f.Name, id)
				}
			}
			if net := p["NetworkConfiguration"].(map[string]any)["AwsvpcConfiguration"].(map[string]any); net["AssignPublicIp"] != "DISABLED" {
				t.Errorf("%s %s: tasks get public IPs", f.Name, id)
			}
		}
	}
}

func TestHealthCheckAndCodeDeployMapping(t *testing.T) {
	files := loadBluemed(t)
	prod := rendered(t, files[2])
	tg := resourcesOfType(prod, "AWS::ElasticLoadBalancingV2::TargetGroup")["BackendGreenTargetGroup"]
	// cutover.yaml: /api/health every 1s, timeout 500ms: clamped to the ALB's minimums.
	if tg["HealthCheckPath"] != "/api/health" || tg["HealthCheckIntervalSeconds"] != 5.0 || tg["HealthCheckTimeoutSeconds"] != 2.0 || tg["Port"] != 3001.0 {
		t.Errorf("backend green target group = %v", tg)
	}
	pipe := rendered(t, files[3])
	dg := resourcesOfType(pipe, "AWS::CodeDeploy::DeploymentGroup")["ProductionBackendDeploymentGroup"]
	if dg["DeploymentConfigName"] != "CodeDeployDefault.ECSLinear10PercentEvery1Minutes" {
		t.Errorf("deployment config = %v, want CodeDeployDefault.ECSLinear10PercentEvery1Minutes", dg["DeploymentConfigName"])
	}
	ar := dg["AutoRollbackConfiguration"].(map[string]any)
	if ar["Enabled"] != true || len(ar["Events"].([]any)) != 3 {
		t.Errorf("auto rollback = %v", ar)
	}
	if bg := dg["BlueGreenDeploymentConfiguration"].(map[string]any)["TerminateBlueInstancesOnDeploymentSuccess"].(map[string]any); bg["TerminationWaitTimeInMinutes"] != 5.0 {
		t.Errorf("termination wait = %v, want 5 (minutes, from termination_wait: 5m)", bg)
	}
	// Stages in order, with the approval before production, on pushes to
	// main; pushes to develop reach staging only.
	want := map[string]struct{ branch, stages string }{
		"Pipeline":        {"main", "Source,Build,Test,Integration,Deploy-staging,Approve-production,Deploy-production"},
		"DevelopPipeline": {"develop", "Source,Build,Test,Integration,Deploy-staging"},
	}
	pipelines := resourcesOfType(pipe, "AWS::CodePipeline::Pipeline")
	for id, w := range want {
		p := pipelines[id]
		if p == nil {
			t.Errorf("no pipeline %s (have %v)", id, slices.Collect(maps.Keys(pipelines)))
			continue
		}
		var stages []string
		for _, s := range p["Stages"].([]any) {
			stages = append(stages, s.(map[string]any)["Name"].(string))
		}
		if got := strings.Join(stages, ","); got != w.stages {
			t.Errorf("%s: stages = %s, want %s", id, got, w.stages)
		}
		trig, _ := json.Marshal(p["Triggers"])
		if !strings.Contains(string(trig), `"Includes":["`+w.branch+`"]`) {
			t.Errorf("%s: triggers = %s, want pushes to %s only", id, trig, w.branch)
		}
		if p["PipelineType"] != "V2" {
			t.Errorf("%s: pipeline type %v, want V2", id, p["PipelineType"])
		}
	}
}

func TestCustomTrafficBecomesDeploymentConfig(t *testing.T) {
	cfg, err := config.Parse("cutover.yaml", []byte(`version: 1
project: shop
services:
  web: { image: nginx, port: 8080 }
environments:
  production:
    strategy: { type: blue_green, canary: { percent: 20, interval: 3m } }
`))
	if err != nil {
		t.Fatal(err)
	}
	files, err := Templates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pipe := rendered(t, files[len(files)-1])
	dc := resourcesOfType(pipe, "AWS::CodeDeploy::DeploymentConfig")["ProductionDeploymentConfig"]
	canary := dc["TrafficRoutingConfig"].(map[string]any)["TimeBasedCanary"].(map[string]any)
	if canary["CanaryPercentage"] != 20.0 || canary["CanaryInterval"] != 3.0 {
		t.Errorf("canary = %v, want 20%% then 3 minutes", canary)
	}
}

func TestNoSecretValuesInTemplates(t *testing.T) {
	cfg, err := config.Load(bluemed)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Pipeline.Secrets = &config.Secrets{Names: []string{"SLACK_URL"}}
	files, err := Templates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, f := range files {
		b, err := Render(f.Template, "yaml")
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	text := all.String()
	// The secret is passed as a Secrets Manager reference only.
	if !strings.Contains(text, "cutover/bluemed/pipeline:SLACK_URL") || !strings.Contains(text, "SECRETS_MANAGER") {
		t.Error("pipeline secret is not passed as a Secrets Manager reference")
	}
	for _, bad := range []string{"hooks.slack.com", "AKIA", "PRIVATE KEY"} {
		if strings.Contains(text, bad) {
			t.Errorf("templates contain %q", bad)
		}
	}
	for _, f := range files {
		for _, p := range f.Template.Parameters {
			if p.Default != nil && p.Description != nil && strings.Contains(strings.ToLower(*p.Description), "secret") {
				t.Errorf("%s: a secret parameter has a default", f.Name)
			}
		}
	}
}

func TestWriteRejectsUnknownFormat(t *testing.T) {
	if _, err := Write(t.TempDir(), "toml", loadBluemed(t)); err == nil || !strings.Contains(err.Error(), "yaml or json") {
		t.Fatalf("err = %v", err)
	}
}

package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDefaultPipelineFollowsTheSeedsFlow(t *testing.T) {
	cfg, err := Load("testdata/bluemed/cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.EffectivePipeline()
	var names []string
	for _, st := range p.Stages {
		var acts []string
		for _, a := range st.Actions {
			acts = append(acts, a.Name+":"+a.Kind)
		}
		names = append(names, st.Name+"["+strings.Join(st.Branches, ",")+"]("+strings.Join(acts, " ")+")")
	}
	got := strings.Join(names, " ")
	want := "build[](backend:build frontend:build) deploy-staging[develop](deploy:deploy verify:verify) deploy-production[main](approve:approval deploy:deploy verify:verify)"
	if got != want {
		t.Fatalf("default pipeline\n got: %s\nwant: %s", got, want)
	}
	if p.Mode != ModeSuperseded {
		t.Fatalf("mode %q", p.Mode)
	}
	verify := p.Stages[1].Actions[1]
	if len(verify.Checks) != 2 || verify.Checks[0].Path != "/api/health" || verify.Checks[1].Path != "/" {
		t.Fatalf("verify checks %+v", verify.Checks)
	}
}

func TestPipelineProblems(t *testing.T) {
	src := `version: 1
project: shop
services:
  web: { image: web:1, port: 80 }
environments:
  prod: { branch: main }
pipeline:
  mode: sometimes
  notifications:
    - { kind: teams, url_secret: HOOK }
  stages:
    - name: test
      actions:
        - { name: unit, kind: test }
        - { name: img, kind: build }
        - { name: it, kind: integration, checks: [{ path: health }] }
`
	_, err := Parse("cutover.yaml", []byte(src))
	if err == nil {
		t.Fatal("want problems")
	}
	for _, want := range []string{
		`cutover.yaml:8:3: pipeline.mode: "sometimes" is not a mode (write superseded or queued)`,
		`pipeline.notifications[0].kind: "teams" is not a notification kind`,
		`pipeline.notifications[0].url_secret: "HOOK" is not among pipeline.secrets.names`,
		`pipeline.stages[0].actions[0].commands: missing`,
		`pipeline.stages[0].actions[1].service: missing`,
		`pipeline.stages[0].actions[2].checks[0].path: "health" must start with /`,
		`pipeline.stages[0].actions[2].checks[0].service: missing`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// ecsHooksYAML is a cutover.yaml with one ecs blue/green environment whose
// engine lines and lambda_hooks entries a test chooses.
func ecsHooksYAML(engine, hooks string) string {
	return `version: 1
project: shop
services:
  web: { image: web:1, port: 80 }
environments:
  prod:
    platform: ecs
    strategy: { type: blue_green }
    ecs:
      cluster: prod
      subnets: [subnet-1]
      ` + engine + `
      lambda_hooks: { ` + hooks + ` }
      services: { web: { target_groups: { blue: tg-b, green: tg-g }, rule: r-1 } }
`
}

func TestECSLambdaHookEventsAreChecked(t *testing.T) {
	src := ecsHooksYAML("codedeploy: { application: shop, deployment_group: prod }",
		`BeforeDeploy: "arn:aws:lambda:us-east-1:1:function:x", AfterInstall: "arn:aws:lambda:us-east-1:1:function:y"`)
	_, err := Parse("cutover.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), `environments.prod.ecs.lambda_hooks.BeforeDeploy: "BeforeDeploy" is not a CodeDeploy ECS lifecycle event`) || strings.Contains(err.Error(), "AfterInstall:") {
		t.Fatalf("got %v", err)
	}
}

func TestECSNativeLambdaHooks(t *testing.T) {
	const fn = "arn:aws:lambda:us-east-1:1:function:"
	src := ecsHooksYAML
	native := "blue_green: ecs\n      role_arn: arn:aws:iam::1:role/ecs"
	cfg, err := Parse("cutover.yaml", []byte(src(native,
		`AfterAllowTestTraffic: "`+fn+`smoke", BeforeAllowTraffic: "`+fn+`smoke", TEST_TRAFFIC_SHIFT: "`+fn+`watch", AfterAllowTraffic: "`+fn+`notify"`)))
	if err != nil {
		t.Fatal(err)
	}
	arns, stages := cfg.Environments["prod"].ECS.NativeHookStages()
	got := fmt.Sprint(arns, stages)
	want := fmt.Sprint([]string{fn + "notify", fn + "smoke", fn + "watch"}, map[string][]string{
		fn + "smoke":  {"POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT"},
		fn + "watch":  {"TEST_TRAFFIC_SHIFT"},
		fn + "notify": {"POST_PRODUCTION_TRAFFIC_SHIFT"},
	})
	if got != want {
		t.Errorf("native hook stages\n got %s\nwant %s", got, want)
	}

	// ECS stage names belong to ECS-native blue/green; ARNs must be ARNs.
	codedeploy := "codedeploy: { application: shop, deployment_group: prod }"
	_, err = Parse("cutover.yaml", []byte(src(codedeploy, `TEST_TRAFFIC_SHIFT: "`+fn+`x", AfterInstall: "smoke"`)))
	for _, want := range []string{
		`environments.prod.ecs.lambda_hooks.TEST_TRAFFIC_SHIFT: "TEST_TRAFFIC_SHIFT" is an ECS-native lifecycle stage but blue/green runs through CodeDeploy`,
		`environments.prod.ecs.lambda_hooks.AfterInstall: "smoke" is not an ARN`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	_, err = Parse("cutover.yaml", []byte(src(native, `AFTER_LUNCH: "`+fn+`x"`)))
	if err == nil || !strings.Contains(err.Error(), `"AFTER_LUNCH" is not a lifecycle event (write "BeforeInstall"`) {
		t.Errorf("unknown stage with native blue/green: %v", err)
	}
}

func TestExitCodeFromOnlyOnIntegration(t *testing.T) {
	src := `version: 1
project: shop
services:
  web: { image: web:1, port: 80 }
environments:
  prod: { branch: main }
pipeline:
  stages:
    - name: test
      actions:
        - { name: it, kind: integration, exit_code_from: tests }
        - { name: unit, kind: test, commands: ["true"], exit_code_from: tests }
`
	_, err := Parse("cutover.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "pipeline.stages[0].actions[1].exit_code_from: only an integration action takes a test service") {
		t.Fatalf("Parse: %v, want the test action's exit_code_from refused", err)
	}
	if strings.Contains(err.Error(), "actions[0]") {
		t.Fatalf("the integration action's exit_code_from was refused too: %v", err)
	}
}

func TestScheduleIsCheckedAndComputesTheNextRun(t *testing.T) {
	src := `version: 1
project: shop
services:
  web: { image: web:1, port: 80 }
environments:
  prod: { branch: main }
pipeline:
  schedule:
    - { cron: "0 3 * * *", branch: main }
    - { cron: "61 * * * *", branch: main }
    - { cron: "@daily" }
`
	_, err := Parse("cutover.yaml", []byte(src))
	if err == nil {
		t.Fatal("want problems")
	}
	for _, want := range []string{
		`pipeline.schedule[1].cron: "61 * * * *" is not a cron expression`,
		`pipeline.schedule[2].branch: missing`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "schedule[0]") {
		t.Errorf("a valid schedule was refused: %v", err)
	}
	next, err := Schedule{Cron: "0 3 * * *", Branch: "main"}.Next(time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC))
	if err != nil || !next.Equal(time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)) {
		t.Fatalf("next run %v %v, want 2026-12-04 03:00 UTC", next, err)
	}
}

// trusted_branches: patterns match as path.Match does, refs/heads/ is the
// branch, and a deploying branch left out is an error that names its field.
func TestTrustedBranches(t *testing.T) {
	p := &Pipeline{TrustedBranches: []string{"main", "release/*"}}
	for branch, want := range map[string]bool{
		"main": true, "refs/heads/main": true, "release/1.2": true,
		"release/1/2": false, "feature": false, "mainly": false, "": false,
	} {
		if got := p.TrustsBranch(branch); got != want {
			t.Errorf("TrustsBranch(%q) = %v, want %v", branch, got, want)
		}
	}
	if !(&Pipeline{}).TrustsBranch("anything") || !(*Pipeline)(nil).TrustsBranch("anything") {
		t.Error("with no trusted_branches every branch is trusted")
	}

	src := `version: 1
project: shop
services:
  web: { image: web:1, port: 80 }
environments:
  prod: { branch: main }
  staging: { branch: develop }
pipeline:
  trusted_branches: [main, "[", "refs/heads/x"]
  schedule:
    - { cron: "@daily", branch: nightly }
  stages:
    - name: ship
      branches: [develop]
      actions:
        - { name: deploy, kind: deploy, environment: staging }
`
	_, err := Parse("cutover.yaml", []byte(src))
	if err == nil {
		t.Fatal("want problems")
	}
	for _, want := range []string{
		`pipeline.trusted_branches[1]: "[" is not a branch pattern`,
		`pipeline.trusted_branches[2]: "refs/heads/x" is not a branch pattern`,
		`environments.staging.branch: branch develop is not among pipeline.trusted_branches, and an untrusted branch never deploys (add it there)`,
		`pipeline.stages[0].branches[0]: branch develop is not among`,
		`pipeline.schedule[0].branch: branch nightly is not among`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "environments.prod.branch") {
		t.Errorf("main is trusted:\n%v", err)
	}
}

package export

import (
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
)

// TestECSFromOutputsReadsTheTemplatesOutputs: every output cutover deploy
// reads is one the app template declares (the two halves cannot drift), and
// cutover.yaml's own settings win over the stack's.
func TestECSFromOutputsReadsTheTemplatesOutputs(t *testing.T) {
	cfg, err := config.Load(bluemed)
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"staging", "production"} {
		e := cfg.Environments[env]
		e.Platform = config.PlatformECS
		e.ECS = &config.ECS{Region: "eu-west-1", Stack: AppStackName("bluemed", env),
			Services: map[string]*config.ECSService{"frontend": {Rule: "arn:own-rule"}}}
	}
	files, err := Templates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, env := range []string{"staging", "production"} {
		outputs := map[string]string{}
		for key := range files[i+1].Template.Outputs {
			outputs[key] = "out:" + key
		}
		outputs[logicalID(env)+"Subnets"] = "subnet-a,subnet-b"
		x, err := ECSFromOutputs(cfg, env, outputs)
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		ev := logicalID(env)
		if x.Cluster != "out:"+ev+"ClusterName" || strings.Join(x.Subnets, " ") != "subnet-a subnet-b" || x.SecurityGroups[0] != "out:"+ev+"TaskSecurityGroupId" ||
			x.ExecutionRoleARN != "out:"+ev+"ExecutionRoleArn" || x.LogGroup != "out:"+ev+"LogGroupName" || x.Region != "eu-west-1" {
			t.Errorf("%s: settings %+v", env, x)
		}
		b := x.Services["backend"]
		if b.CPU != "256" || b.Memory != "512" {
			t.Errorf("%s: task size %s/%s, want the template's 256/512", env, b.CPU, b.Memory)
		}
		if b.Service != "out:"+ev+"BackendServiceName" || b.Rule != "out:"+ev+"BackendProdListenerRuleArn" || b.TaskRoleARN != "out:"+ev+"BackendTaskRoleArn" || b.TargetGroups.Blue != "out:"+ev+"BackendBlueTargetGroupArn" {
			t.Errorf("%s: backend %+v", env, b)
		}
		if x.Services["frontend"].Rule != "arn:own-rule" {
			t.Errorf("%s: cutover.yaml's rule lost to the stack's: %+v", env, x.Services["frontend"])
		}
		if env == "production" && (b.TargetGroups.Green != "out:ProductionBackendGreenTargetGroupArn" || x.CodeDeploy == nil || x.CodeDeploy.Application != "bluemed") {
			t.Errorf("production: green %q, codedeploy %+v", b.TargetGroups.Green, x.CodeDeploy)
		}
		if x.DeploymentGroupOf(env, "frontend") != env+"-frontend" {
			t.Errorf("deployment group %s", x.DeploymentGroupOf(env, "frontend"))
		}
	}
	// A stack that is not this export's says which outputs it lacks.
	if _, err := ECSFromOutputs(cfg, "staging", map[string]string{"StagingClusterName": "c"}); err == nil || !strings.Contains(err.Error(), "StagingBackendServiceName") {
		t.Errorf("foreign stack: %v", err)
	}
}

// cutover deploy from an exported stack: the tasks read their secrets with
// the stack's execution role, so a secret it cannot read is refused before
// anything deploys, naming the field; with an execution role of cutover.yaml's
// own, or without a stack, the stack's limits do not apply.
func TestStackSecretsRefusesWhatTheStackCannotRead(t *testing.T) {
	cfg, err := config.Load(bluemed)
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Environments["staging"]
	e.Platform = config.PlatformECS
	e.ECS = &config.ECS{Region: "eu-west-1", Stack: AppStackName("bluemed", "staging"),
		Services: map[string]*config.ECSService{"backend": {Secrets: map[string]string{"OK": "/cutover/bluemed/staging/ok", "DB": "/team/db-url"}}}}
	err = StackSecrets(cfg, "staging")
	want := "environments.staging.ecs.services.backend.secrets.DB: /team/db-url is not readable by the exported execution role"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "secrets.OK") {
		t.Errorf("StackSecrets: %v, want %q only", err, want)
	}
	e.ECS.ExecutionRoleARN = "arn:aws:iam::123456789012:role/team-execution"
	if err := StackSecrets(cfg, "staging"); err != nil {
		t.Errorf("with cutover.yaml's own execution role: %v", err)
	}
	e.ECS.ExecutionRoleARN, e.ECS.Stack = "", ""
	if err := StackSecrets(cfg, "staging"); err != nil {
		t.Errorf("without a stack: %v", err)
	}
}

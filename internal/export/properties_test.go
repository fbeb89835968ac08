package export

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/testenv"
	"gopkg.in/yaml.v3"
)

// Each test here parses the exported templates of examples/bluemed, the way
// CloudFormation reads them, and asserts one property a real account needs.

func bluemedTemplates(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, f := range loadBluemed(t) {
		out[f.Name] = rendered(t, f)
	}
	return out
}

// buildspecOf parses the buildspec of a CodeBuild project.
func buildspecOf(t *testing.T, project map[string]any) (install, build []string) {
	t.Helper()
	var spec struct {
		Phases map[string]struct{ Commands []string } `yaml:"phases"`
	}
	if err := yaml.Unmarshal([]byte(project["Source"].(map[string]any)["BuildSpec"].(string)), &spec); err != nil {
		t.Fatal(err)
	}
	return spec.Phases["install"].Commands, spec.Phases["build"].Commands
}

func envVars(project map[string]any) map[string]any {
	vars := map[string]any{}
	for _, v := range project["Environment"].(map[string]any)["EnvironmentVariables"].([]any) {
		m := v.(map[string]any)
		vars[m["Name"].(string)] = m["Value"]
	}
	return vars
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestVerifyCurlsTheDomain: the certificate is for the user's domain, so
// Verify checks https://DOMAIN, the app stack's DomainName parameter.
func TestVerifyCurlsTheDomain(t *testing.T) {
	tpl := bluemedTemplates(t)
	for _, env := range []string{"Staging", "Production"} {
		p := resourcesOfType(tpl["pipeline"], "AWS::CodeBuild::Project")["Verify"+env+"Project"]
		_, cmds := buildspecOf(t, p)
		all := strings.Join(cmds, "\n")
		if !strings.Contains(all, `curl -fsS --max-time 10 "https://$DOMAIN/api/health"`) || strings.Contains(all, "DNSName") || strings.Contains(all, "elbv2") {
			t.Errorf("Verify%s commands:\n%s", env, all)
		}
		if got := jsonOf(envVars(p)["DOMAIN"]); got != `{"Fn::ImportValue":"bluemed-`+env+`DomainName"}` {
			t.Errorf("Verify%s DOMAIN = %s", env, got)
		}
		out := tpl["app-"+strings.ToLower(env)]["Outputs"].(map[string]any)[env+"DomainName"].(map[string]any)
		if jsonOf(out["Value"]) != `{"Ref":"DomainName"}` || jsonOf(out["Export"]) != `{"Name":"bluemed-`+env+`DomainName"}` {
			t.Errorf("app-%s does not export its DomainName parameter: %v", env, out)
		}
	}
}

// TestAlarmsWatchBothTargetGroups: after a blue/green release production is
// on the other target group; the alarms CodeDeploy watches must cover it.
func TestAlarmsWatchBothTargetGroups(t *testing.T) {
	prod := bluemedTemplates(t)["app-production"]
	n := 0
	for id, a := range resourcesOfType(prod, "AWS::CloudWatch::Alarm") {
		text := jsonOf(a)
		if !strings.Contains(text, "AWS/ApplicationELB") {
			continue
		}
		n++
		svc := "Backend"
		if strings.HasPrefix(id, "Frontend") {
			svc = "Frontend"
		}
		if !strings.Contains(text, svc+"BlueTargetGroup") || !strings.Contains(text, svc+"GreenTargetGroup") {
			t.Errorf("alarm %s reads only one target group: %s", id, text)
		}
	}
	if n != 6 {
		t.Errorf("%d load balancer alarms, want 3 per service", n)
	}
}

// TestPushOnceDeployByDigest: ECR refuses a tag pushed twice (immutable
// tags), so a retried run or a commit promoted from develop to main must
// reuse the image the commit already has and deploy it by digest.
func TestPushOnceDeployByDigest(t *testing.T) {
	p := resourcesOfType(bluemedTemplates(t)["pipeline"], "AWS::CodeBuild::Project")["BuildProject"]
	_, cmds := buildspecOf(t, p)
	pushes := 0
	for _, c := range cmds {
		if !strings.Contains(c, "docker push") {
			continue
		}
		pushes++
		check := strings.Index(c, "if DIGEST=$(aws ecr describe-images --repository-name")
		push := strings.Index(c, "docker push")
		if check != 0 || !strings.Contains(c[:push], "; else docker build") {
			t.Errorf("push not guarded by a check of the tag: %s", c)
		}
	}
	all := strings.Join(cmds, "\n")
	if pushes != 2 || !strings.Contains(all, `"imageUri":"%s"}]' "$REGISTRY/bluemed/backend@$DIGEST"`) || !strings.Contains(all, `'{"ImageURI":"%s"}' "$REGISTRY/bluemed/frontend@$DIGEST"`) {
		t.Errorf("%d pushes; images not deployed by digest:\n%s", pushes, all)
	}
}

// TestApprovalTopicKeyGrants: the approval topic is encrypted with the logs
// key; the pipeline role publishing approvals needs its data key (through
// SNS), and the notification rule's service needs it in the key policy.
func TestApprovalTopicKeyGrants(t *testing.T) {
	tpl := bluemedTemplates(t)
	topic := resourcesOfType(tpl["pipeline"], "AWS::SNS::Topic")["ApprovalTopic"]
	if jsonOf(topic["KmsMasterKeyId"]) != `{"Fn::ImportValue":"bluemed-LogsKeyArn"}` {
		t.Fatalf("approval topic key %v", topic["KmsMasterKeyId"])
	}
	role := jsonOf(resourcesOfType(tpl["pipeline"], "AWS::IAM::Role")["PipelineRole"])
	if !strings.Contains(role, `{"Action":["kms:GenerateDataKey*","kms:Decrypt"],"Condition":{"StringEquals":{"kms:ViaService":{"Fn::Sub":"sns.${AWS::Region}.amazonaws.com"}}},"Effect":"Allow","Resource":{"Fn::ImportValue":"bluemed-LogsKeyArn"}}`) {
		t.Errorf("pipeline role cannot use the approval topic's key: %s", role)
	}
	key := jsonOf(resourcesOfType(tpl["shared"], "AWS::KMS::Key")["LogsKey"])
	if !strings.Contains(key, "codestar-notifications.amazonaws.com") || !strings.Contains(key, "kms:GenerateDataKey*") {
		t.Errorf("logs key policy does not let the notification service encrypt: %s", key)
	}
}

// TestTestListenerOnlyWhenUsed: no test listener on the internet-facing
// load balancer unless test traffic hooks use it, and then from the VPC only.
func TestTestListenerOnlyWhenUsed(t *testing.T) {
	tpl := bluemedTemplates(t)
	if l := resourcesOfType(tpl["app-production"], "AWS::ElasticLoadBalancingV2::Listener"); len(l) != 1 || l["ProdListener"] == nil {
		t.Errorf("listeners without test hooks: %v", l)
	}
	if strings.Contains(jsonOf(tpl["app-production"]), "8443") || strings.Contains(jsonOf(tpl["pipeline"]), "TestTrafficRoute") {
		t.Error("test listener port or route present without hooks")
	}

	cfg, err := config.Load(bluemed)
	if err != nil {
		t.Fatal(err)
	}
	prod := cfg.Environments["production"]
	prod.Platform = config.PlatformECS
	prod.ECS = &config.ECS{Cluster: "bluemed-production", LambdaHooks: map[string]string{"AfterAllowTestTraffic": "arn:aws:lambda:us-east-1:123456789012:function:smoke"}}
	files, err := Templates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	app, pipe := rendered(t, files[2]), rendered(t, files[3])
	sg := resourcesOfType(app, "AWS::EC2::SecurityGroup")["LoadBalancerSecurityGroup"]
	for _, in := range sg["SecurityGroupIngress"].([]any) {
		rule := in.(map[string]any)
		if rule["FromPort"] == 8443.0 && jsonOf(rule["CidrIp"]) != `{"Fn::If":["OwnVpc",{"Fn::GetAtt":["Vpc","CidrBlock"]},"`+vpcCIDR+`"]}` {
			t.Errorf("test listener open to %v", rule["CidrIp"])
		}
	}
	if !strings.Contains(jsonOf(sg), "8443") || resourcesOfType(app, "AWS::ElasticLoadBalancingV2::Listener")["TestListener"] == nil {
		t.Error("no test listener with a test traffic hook")
	}
	dg := resourcesOfType(pipe, "AWS::CodeDeploy::DeploymentGroup")["ProductionBackendDeploymentGroup"]
	if !strings.Contains(jsonOf(dg), `"TestTrafficRoute":{"ListenerArns":[{"Fn::ImportValue":"bluemed-ProductionTestListenerArn"}]}`) {
		t.Errorf("deployment group has no test traffic route: %s", jsonOf(dg))
	}
	// The hook that sends the test traffic is in the AppSpec the deploy action reads.
	_, cmds := buildspecOf(t, resourcesOfType(pipe, "AWS::CodeBuild::Project")["BuildProject"])
	script := ""
	for _, c := range cmds {
		if strings.Contains(c, "appspec-production.json") && strings.Contains(c, `"ContainerName":"backend"`) {
			script = c
		}
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", "-c", strings.Replace(script, "out/backend/", dir+"/", 1))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("appspec command %q: %v %s", script, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "appspec-production.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Hooks []map[string]string
	}
	if err := json.Unmarshal(b, &spec); err != nil || len(spec.Hooks) != 1 || spec.Hooks[0]["AfterAllowTestTraffic"] != "arn:aws:lambda:us-east-1:123456789012:function:smoke" {
		t.Errorf("appspec %s: %v", b, err)
	}
	if !strings.Contains(jsonOf(pipe), `"AppSpecTemplatePath":"appspec-production.json"`) {
		t.Error("the deploy action does not read the environment's AppSpec")
	}
}

// TestCodeBuildLeastPrivilege: Docker (privileged mode) only where images
// are built or composed; only the Build project's role can push images; the
// binary the builds run must match the CutoverSha256 parameter.
func TestCodeBuildLeastPrivilege(t *testing.T) {
	tpl := bluemedTemplates(t)
	projects := resourcesOfType(tpl["pipeline"], "AWS::CodeBuild::Project")
	for id, p := range projects {
		priv := p["Environment"].(map[string]any)["PrivilegedMode"] == true
		if want := id == "BuildProject" || id == "IntegrationProject"; priv != want {
			t.Errorf("%s: privileged %v, want %v", id, priv, want)
		}
		role := jsonOf(p["ServiceRole"])
		if want := map[bool]string{true: "BuildRole", false: "CheckRole"}[id == "BuildProject"]; !strings.Contains(role, `"`+want+`"`) {
			t.Errorf("%s runs as %s, want %s", id, role, want)
		}
		install, _ := buildspecOf(t, p)
		if len(install) < 2 || install[1] != `echo "$CUTOVER_SHA256  /usr/local/bin/cutover" | sha256sum -c -` || !strings.Contains(install[0], "$CUTOVER_DOWNLOAD_URL") {
			t.Errorf("%s installs cutover without checking it: %v", id, install)
		}
		if jsonOf(envVars(p)["CUTOVER_SHA256"]) != `{"Ref":"CutoverSha256"}` {
			t.Errorf("%s: CUTOVER_SHA256 = %v", id, envVars(p)["CUTOVER_SHA256"])
		}
	}
	if len(projects) != 5 {
		t.Errorf("%d projects", len(projects))
	}
	roles := resourcesOfType(tpl["pipeline"], "AWS::IAM::Role")
	if !strings.Contains(jsonOf(roles["BuildRole"]), "ecr:PutImage") {
		t.Error("the build role cannot push")
	}
	if check := jsonOf(roles["CheckRole"]); strings.Contains(check, "ecr:") || strings.Contains(check, "s3:PutObject") || strings.Contains(check, "kms:Encrypt") {
		t.Errorf("the role of Test, Integration and Verify can write: %s", check)
	}
	param := tpl["pipeline"]["Parameters"].(map[string]any)["CutoverSha256"].(map[string]any)
	if param["AllowedPattern"] != "^[0-9a-f]{64}$" || param["Default"] != nil {
		t.Errorf("CutoverSha256 parameter %v", param)
	}
}

// TestStackUpdatesLeaveCodeDeployAlone: CodeDeploy refuses a task
// definition change made by CloudFormation on a CODE_DEPLOY service, so an
// edit of cutover.yaml's environment variables must leave the blue/green
// stack's task definitions and services as they are; the variables reach
// the release through the Build's task definition for CodeDeploy.
func TestStackUpdatesLeaveCodeDeployAlone(t *testing.T) {
	before := bluemedTemplates(t)
	cfg, err := config.Load(bluemed)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Services["backend"].Env["CORS_ORIGIN"] = "https://bluemed.example.com"
	files, err := Templates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	after := rendered(t, files[2])
	for _, typ := range []string{"AWS::ECS::TaskDefinition", "AWS::ECS::Service"} {
		if b, a := jsonOf(resourcesOfType(before["app-production"], typ)), jsonOf(resourcesOfType(after, typ)); a != b {
			t.Errorf("%s of the blue/green stack changed with an environment variable:\n%s\n%s", typ, b, a)
		}
	}
	_, cmds := buildspecOf(t, resourcesOfType(rendered(t, files[3]), "AWS::CodeBuild::Project")["BuildProject"])
	if all := strings.Join(cmds, "\n"); !strings.Contains(all, `.containerDefinitions[0].environment = [{"name":"CORS_ORIGIN","value":"https://bluemed.example.com"}] | .containerDefinitions[0].secrets = []' > out/backend/taskdef-production.json`) {
		t.Errorf("the Build's task definition for CodeDeploy does not carry the environment:\n%s", all)
	}
	// Rolling services keep the variables in the stack (the ECS deploy action only swaps the image).
	if !strings.Contains(jsonOf(resourcesOfType(rendered(t, files[1]), "AWS::ECS::TaskDefinition")["BackendTaskDefinition"]), "https://bluemed.example.com") {
		t.Error("rolling task definition lost its environment")
	}
}

// TestNativeBlueGreenExport: with ecs.blue_green: ecs the services use the
// ECS deployment controller with ECS's own blue/green, the rules forward to
// both target groups (all on blue), ECS gets a role to move them, and no
// CodeDeploy deployment group or CodeDeployToECS action is exported.
func TestNativeBlueGreenExport(t *testing.T) {
	cfg := nativeBluemed(t)
	files, err := Templates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	app, pipe := rendered(t, files[2]), rendered(t, files[3])
	svc := resourcesOfType(app, "AWS::ECS::Service")["BackendService"]
	dc := svc["DeploymentConfiguration"].(map[string]any)
	if jsonOf(svc["DeploymentController"]) != `{"Type":"ECS"}` || dc["Strategy"] != "LINEAR" || jsonOf(dc["LinearConfiguration"]) != `{"StepBakeTimeInMinutes":1,"StepPercent":10}` || dc["BakeTimeInMinutes"] != 1.0 {
		t.Errorf("backend service deployment: %s %s", jsonOf(svc["DeploymentController"]), jsonOf(dc))
	}
	adv := jsonOf(svc["LoadBalancers"].([]any)[0].(map[string]any)["AdvancedConfiguration"])
	if adv != `{"AlternateTargetGroupArn":{"Ref":"BackendGreenTargetGroup"},"ProductionListenerRule":{"Ref":"BackendProdListenerRule"},"RoleArn":{"Fn::GetAtt":["InfrastructureRole","Arn"]}}` {
		t.Errorf("advanced configuration %s", adv)
	}
	rule := jsonOf(resourcesOfType(app, "AWS::ElasticLoadBalancingV2::ListenerRule")["BackendProdListenerRule"]["Actions"])
	if rule != `[{"ForwardConfig":{"TargetGroups":[{"TargetGroupArn":{"Ref":"BackendBlueTargetGroup"},"Weight":100},{"TargetGroupArn":{"Ref":"BackendGreenTargetGroup"},"Weight":0}]},"Type":"forward"}]` {
		t.Errorf("rule actions %s", rule)
	}
	if role := jsonOf(resourcesOfType(app, "AWS::IAM::Role")["InfrastructureRole"]); !strings.Contains(role, "ecs.amazonaws.com") || !strings.Contains(role, "AmazonECSInfrastructureRolePolicyForLoadBalancers") {
		t.Errorf("infrastructure role %s", role)
	}
	if n := len(resourcesOfType(pipe, "AWS::CodeDeploy::DeploymentGroup")); n != 0 {
		t.Errorf("%d CodeDeploy deployment groups for an ECS-native environment", n)
	}
	if p := jsonOf(pipe); strings.Contains(p, "CodeDeployToECS") || !strings.Contains(p, `"Provider":"ECS"`) {
		t.Error("the production deploy action is not ECS's")
	}
	// The stack's outputs give cutover deploy the role.
	outputs := map[string]string{}
	for key := range files[2].Template.Outputs {
		outputs[key] = "out:" + key
	}
	x, err := ECSFromOutputs(cfg, "production", outputs)
	if err != nil || x.RoleARN != "out:ProductionInfrastructureRoleArn" || x.Services["backend"].TargetGroups.Green == "" || x.CodeDeploy != nil {
		t.Errorf("settings from the stack %+v: %v", x, err)
	}
}

// TestECSSecretsReachTheTasks: a service's ECS secrets (valueFrom) reach its
// tasks on both paths: the rolling stack's task definition, and the task
// definition the Build writes for CodeDeploy (checked by running its jq
// program on a task definition as describe-task-definition returns it),
// while the blue/green stack's bootstrap stays as it was. A secret the
// exported execution role cannot read is refused, naming the field.
func TestECSSecretsReachTheTasks(t *testing.T) {
	jqPath := testenv.RequireCommand(t, "jq", "apt-get install jq")
	before := bluemedTemplates(t)
	cfg, err := config.Load(bluemed)
	if err != nil {
		t.Fatal(err)
	}
	const dbARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cutover/bluemed/production/db-AbCdEf:url::"
	set := func(env, svc string, secrets map[string]string) {
		e := cfg.Environments[env]
		if e.ECS == nil {
			e.ECS = &config.ECS{}
		}
		if e.ECS.Services == nil {
			e.ECS.Services = map[string]*config.ECSService{}
		}
		if e.ECS.Services[svc] == nil {
			e.ECS.Services[svc] = &config.ECSService{}
		}
		e.ECS.Services[svc].Secrets = secrets
	}
	set("staging", "backend", map[string]string{"API_KEY": "/cutover/bluemed/staging/api-key"})
	set("production", "frontend", map[string]string{"PG": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0a1b2c3d-4e5f-6789-abcd-ef0123456789-AbCdEf:password::"})
	set("production", "backend", map[string]string{"DB_URL": dbARN, "API_KEY": "arn:aws:ssm:eu-west-1:123456789012:parameter/cutover/bluemed/production/api-key"})
	files, err := Templates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]map[string]any{}
	for _, f := range files {
		byName[f.Name] = rendered(t, f)
	}
	staging := jsonOf(resourcesOfType(byName["app-staging"], "AWS::ECS::TaskDefinition")["BackendTaskDefinition"])
	if !strings.Contains(staging, `"Secrets":[{"Name":"API_KEY","ValueFrom":"/cutover/bluemed/staging/api-key"}]`) {
		t.Errorf("the rolling task definition lacks its secret:\n%s", staging)
	}
	if b, a := jsonOf(resourcesOfType(before["app-production"], "AWS::ECS::TaskDefinition")), jsonOf(resourcesOfType(byName["app-production"], "AWS::ECS::TaskDefinition")); a != b {
		t.Errorf("the blue/green stack's task definitions changed with a secret:\n%s\n%s", b, a)
	}
	_, cmds := buildspecOf(t, resourcesOfType(byName["pipeline"], "AWS::CodeBuild::Project")["BuildProject"])
	var program string
	for _, c := range cmds {
		if strings.Contains(c, "taskdef-production.json") && strings.Contains(c, "bluemed-production-backend") {
			_, rest, _ := strings.Cut(c, "| jq '")
			program, _, _ = strings.Cut(rest, "' > ")
		}
	}
	if program == "" {
		t.Fatalf("no task definition command for backend in production:\n%s", strings.Join(cmds, "\n"))
	}
	described := `{"family":"bluemed-production-backend","executionRoleArn":"arn:aws:iam::123456789012:role/x","networkMode":"awsvpc","cpu":"256","memory":"512","requiresCompatibilities":["FARGATE"],"status":"ACTIVE","containerDefinitions":[{"name":"backend","image":"old","secrets":[{"name":"GONE","valueFrom":"/cutover/bluemed/production/gone"}]}]}`
	cmd := exec.Command(jqPath, "-c", strings.ReplaceAll(program, `'\''`, "'"))
	cmd.Stdin = strings.NewReader(described)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("jq %s: %v", program, err)
	}
	var td struct {
		ContainerDefinitions []struct {
			Image   string
			Secrets []map[string]string
		}
	}
	if err := json.Unmarshal(out, &td); err != nil || len(td.ContainerDefinitions) != 1 {
		t.Fatalf("jq wrote %s (%v)", out, err)
	}
	want := []map[string]string{{"name": "API_KEY", "valueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/cutover/bluemed/production/api-key"}, {"name": "DB_URL", "valueFrom": dbARN}}
	if c := td.ContainerDefinitions[0]; c.Image != "<IMAGE1_NAME>" || !reflect.DeepEqual(c.Secrets, want) {
		t.Errorf("the release's task definition: image %q, secrets %v; want %v", c.Image, c.Secrets, want)
	}

	// Secrets the exported execution role cannot read.
	set("staging", "backend", map[string]string{"A": "/other/api-key", "B": "arn:aws:secretsmanager:eu-west-1:1:secret:cutover/bluemed/production/db", "C": "/cutover/bluemed/staging/"})
	_, err = Templates(cfg)
	for _, want := range []string{
		"environments.staging.ecs.services.backend.secrets.A: /other/api-key is not readable by the exported execution role, which reads SSM parameters under /cutover/bluemed/staging/ and Secrets Manager secrets named cutover/bluemed/staging/...",
		"secrets.B: arn:aws:secretsmanager:eu-west-1:1:secret:cutover/bluemed/production/db is not readable",
		"secrets.C: /cutover/bluemed/staging/ is not readable",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Templates: %v, want an error with %q", err, want)
		}
	}
}

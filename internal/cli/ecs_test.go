package cli_test

// The real cutover binary deploying to ECS environments in moto (server
// mode, on 127.0.0.1). Moto runs no tasks and completes an ECS deployment
// without tasks at once; its CodeDeploy stays "Created" and does not
// implement StopDeployment or GetDeploymentTarget, so the blue/green test
// asserts the calls and the recorded failure, not a traffic shift.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codedeploy"
	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/platform/ecs"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// startMoto runs moto_server until the test ends and points the AWS SDK
// of this process and its children (os.Environ()) at it with static fake
// credentials and nothing else from the machine's AWS configuration.
func startMoto(t *testing.T) string {
	t.Helper()
	url := testenv.StartMoto(t)
	testenv.FakeAWSCredentials(t)
	return url
}

// ecsE2E is one cutover.yaml with an ecs environment pointing at moto.
type ecsE2E struct {
	t          *testing.T
	bin, home  string
	file, moto string
	ecs        *awsecs.Client
	cd         *codedeploy.Client
}

func newECSE2E(t *testing.T, controller ecstypes.DeploymentControllerType, envYAML string) *ecsE2E {
	testenv.RequireDocker(t) // history and status open the local session too
	e := &ecsE2E{t: t, moto: startMoto(t), bin: testenv.CutoverBinary(t), home: t.TempDir()}
	ctx := context.Background()
	c, err := ecs.NewClients(ctx, ecs.ClientOptions{Region: "us-east-1", Endpoint: e.moto, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	e.ecs, e.cd = c.ECS.(*awsecs.Client), c.CodeDeploy.(*codedeploy.Client)
	if _, err := e.ecs.CreateCluster(ctx, &awsecs.CreateClusterInput{ClusterName: aws.String("shop")}); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"backend", "frontend"} {
		td, err := e.ecs.RegisterTaskDefinition(ctx, &awsecs.RegisterTaskDefinitionInput{
			Family: aws.String("seed-" + svc),
			ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String(svc), Image: aws.String("example@sha256:" + strings.Repeat("0", 64)),
				MemoryReservation: aws.Int32(512)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		// Desired count 0: moto marks a deployment without tasks completed at once.
		if _, err := e.ecs.CreateService(ctx, &awsecs.CreateServiceInput{
			Cluster: aws.String("shop"), ServiceName: aws.String("shop-" + svc), DesiredCount: aws.Int32(0),
			TaskDefinition: td.TaskDefinition.TaskDefinitionArn, DeploymentController: &ecstypes.DeploymentController{Type: controller},
		}); err != nil {
			t.Fatal(err)
		}
	}
	y := `version: 1
project: shop
services:
  backend: { image: shop/backend:1, port: 3001, route: { path_prefix: /api } }
  frontend: { image: shop/frontend:1, port: 80, route: { path_prefix: / } }
environments:
  staging:
    platform: ecs
` + envYAML + `    ecs:
      region: us-east-1
      endpoint: ` + e.moto + `
      cluster: shop
      execution_role_arn: arn:aws:iam::123456789012:role/exec
      log_group: /shop/staging
      subnets: [subnet-0a1b2c3d]
      services:
        backend:
          service: shop-backend
          cpu: "256"
          memory: "512"
          secrets: { DB_PASSWORD: "arn:aws:ssm:us-east-1:123456789012:parameter/db" }
        frontend: { service: shop-frontend, cpu: "256", memory: "512" }
`
	if strings.Contains(envYAML, "blue_green") {
		y += "      codedeploy: { application: shop }\n" // deployment groups staging-backend and staging-frontend
		y += "      lambda_hooks: { AfterAllowTestTraffic: \"arn:aws:lambda:us-east-1:123456789012:function:smoke\" }\n"
	}
	e.file = filepath.Join(t.TempDir(), "cutover.yaml")
	if err := os.WriteFile(e.file, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *ecsE2E) run(args ...string) (string, string, error) {
	cmd := exec.Command(e.bin, append(args, "-f", e.file, "--home", e.home)...)
	cmd.Env = append(os.Environ(), "CUTOVER_HOME="+e.home) // with startMoto's AWS settings
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (e *ecsE2E) history() []store.Deployment {
	e.t.Helper()
	out, errOut, err := e.run("history", "staging", "--output", "json")
	if err != nil {
		e.t.Fatalf("history: %v\n%s", err, errOut)
	}
	var h struct{ Deployments []store.Deployment }
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		e.t.Fatalf("history output: %v\n%s", err, out)
	}
	return h.Deployments
}

const (
	backendRef  = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-backend@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	frontendRef = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-frontend@sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func TestECSRollingDeploy(t *testing.T) {
	e := newECSE2E(t, ecstypes.DeploymentControllerTypeEcs, "    strategy: { type: rolling }\n")

	// Without --image, frontend is built locally and pushed to ECR; its
	// image is not on this machine, so that fails with the service named,
	// before anything reaches ECS.
	_, errOut, err := e.run("deploy", "staging", "--image", "backend="+backendRef)
	if err == nil || !strings.Contains(errOut, "frontend") || strings.Count(strings.TrimSpace(errOut), "\n") > 2 {
		t.Errorf("deploy without --image for frontend: err %v\n%s", err, errOut)
	}
	_, errOut, err = e.run("deploy", "staging", "--image", "backend=shop/backend:1", "--image", "frontend="+frontendRef)
	if err == nil || !strings.Contains(errOut, "needs an image pinned by digest") {
		t.Errorf("deploy by tag: err %v\n%s", err, errOut)
	}

	out, errOut, err := e.run("deploy", "staging", "--image", "backend="+backendRef, "--image", "frontend="+frontendRef)
	if err != nil {
		t.Fatalf("deploy: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if !strings.Contains(errOut, "backend: ECS deployment") || !strings.Contains(out, "succeeded") {
		t.Errorf("deploy output\nstdout: %s\nstderr: %s", out, errOut)
	}
	// Nothing runs any more: continue says so, in the words it uses locally
	// (the request goes to the deployment controller on both platforms).
	if _, errOut, err := e.run("continue", "staging"); err == nil || !strings.Contains(errOut, "no deployment of shop/staging is in progress") {
		t.Errorf("continue without a deployment: %v\n%s", err, errOut)
	}
	h := e.history()
	if len(h) != 1 || h[0].Status != store.DeploymentSucceeded || h[0].Strategy != "rolling" {
		t.Fatalf("history %+v", h)
	}
	// One phase vocabulary: the ECS deployment's phase is the controller's.
	if p, err := deploy.ParsePhase(h[0].Phase); err != nil || p != deploy.PhaseSucceeded {
		t.Errorf("history phase %q: %v", h[0].Phase, err)
	}
	res, err := e.ecs.DescribeServices(context.Background(), &awsecs.DescribeServicesInput{Cluster: aws.String("shop"), Services: []string{"shop-backend", "shop-frontend"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range res.Services {
		name := strings.TrimPrefix(aws.ToString(svc.ServiceName), "shop-")
		if td := aws.ToString(svc.TaskDefinition); !strings.HasSuffix(td, ":task-definition/shop-staging-"+name+":1") {
			t.Errorf("service %s runs %s, want the task definition cutover registered", name, td)
		}
		if dc := svc.DeploymentConfiguration; dc == nil || dc.DeploymentCircuitBreaker == nil || !dc.DeploymentCircuitBreaker.Rollback {
			t.Errorf("service %s: circuit breaker with rollback not set: %+v", name, dc)
		}
	}
	td, err := e.ecs.DescribeTaskDefinition(context.Background(), &awsecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("shop-staging-backend:1")})
	if err != nil {
		t.Fatal(err)
	}
	c := td.TaskDefinition.ContainerDefinitions[0]
	if aws.ToString(c.Image) != backendRef || len(c.Secrets) != 1 || aws.ToString(td.TaskDefinition.ExecutionRoleArn) == "" {
		t.Errorf("task definition %+v", c)
	}

	// status and history of an ecs environment need no Docker engine.
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	if _, errOut, err := e.run("history", "staging"); err != nil {
		t.Fatalf("history without Docker: %v\n%s", err, errOut)
	}
	out, errOut, err = e.run("status", "staging", "--output", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, errOut)
	}
	var st []struct {
		Status string
		ECS    []struct {
			Service, Status, Error string
			TaskDefinition         string `json:"task_definition"`
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 || len(st[0].ECS) != 2 {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if s := st[0].ECS[0]; s.Service != "backend" || s.Status != "ACTIVE" || !strings.HasSuffix(s.TaskDefinition, "shop-staging-backend:1") || s.Error != "" {
		t.Errorf("status of backend %+v", s)
	}

	os.Unsetenv("DOCKER_HOST") // t.Setenv restores it at the end

	_, errOut, err = e.run("stop", "staging")
	if err == nil || !strings.Contains(errOut, "no deployment of shop/staging is in progress") {
		t.Errorf("stop with nothing in progress: err %v\n%s", err, errOut)
	}

	// A second revision, then a rollback: the first revision's images run again.
	newBackend := strings.Replace(backendRef, "sha256:1111", "sha256:3333", 1)
	out, errOut, err = e.run("deploy", "staging", "--diff", "--image", "backend="+newBackend, "--image", "frontend="+frontendRef)
	if err != nil {
		t.Fatalf("second deploy: %v\n%s%s", err, out, errOut)
	}
	// --diff: the backend's image changes, the frontend's task definition does not.
	if !strings.Contains(errOut, "backend: task definition change\n  - container backend image: "+backendRef+"\n  + container backend image: "+newBackend+"\n") ||
		!strings.Contains(errOut, "frontend: task definition change\n  (no change but the revision)") {
		t.Errorf("deploy --diff\n%s", errOut)
	}
	if out, errOut, err := e.run("rollback", "staging"); err != nil || !strings.Contains(errOut, "redeploying the previous revision "+h[0].Revision) {
		t.Fatalf("rollback: %v\n%s%s", err, out, errOut)
	}
	if h := e.history(); len(h) != 3 || h[0].Status != store.DeploymentSucceeded || h[0].Revision != h[2].Revision {
		t.Errorf("history after rollback %+v", h)
	}
	res, err = e.ecs.DescribeServices(context.Background(), &awsecs.DescribeServicesInput{Cluster: aws.String("shop"), Services: []string{"shop-backend"}})
	if err != nil {
		t.Fatal(err)
	}
	td, err = e.ecs.DescribeTaskDefinition(context.Background(), &awsecs.DescribeTaskDefinitionInput{TaskDefinition: res.Services[0].TaskDefinition})
	if err != nil {
		t.Fatal(err)
	}
	if img := aws.ToString(td.TaskDefinition.ContainerDefinitions[0].Image); img != backendRef || td.TaskDefinition.Revision != 3 {
		t.Errorf("after rollback backend runs %s (revision %d), want %s in a new task definition revision 3", img, td.TaskDefinition.Revision, backendRef)
	}
}

func TestECSBlueGreenDeploy(t *testing.T) {
	e := newECSE2E(t, ecstypes.DeploymentControllerTypeCodeDeploy, "    strategy: { type: blue_green, traffic: Canary10Percent5Minutes }\n")
	ctx := context.Background()
	if _, err := e.cd.CreateApplication(ctx, &codedeploy.CreateApplicationInput{ApplicationName: aws.String("shop"), ComputePlatform: cdtypes.ComputePlatformEcs}); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"backend", "frontend"} {
		if _, err := e.cd.CreateDeploymentGroup(ctx, &codedeploy.CreateDeploymentGroupInput{
			ApplicationName: aws.String("shop"), DeploymentGroupName: aws.String("staging-" + svc),
			ServiceRoleArn:  aws.String("arn:aws:iam::123456789012:role/codedeploy"),
			DeploymentStyle: &cdtypes.DeploymentStyle{DeploymentType: cdtypes.DeploymentTypeBlueGreen, DeploymentOption: cdtypes.DeploymentOptionWithTrafficControl},
			EcsServices:     []cdtypes.ECSService{{ClusterName: aws.String("shop"), ServiceName: aws.String("shop-" + svc)}},
		}); err != nil {
			t.Fatal(err)
		}
	}

	out, errOut, err := e.run("deploy", "staging", "--timeout", "3s", "--image", "backend="+backendRef, "--image", "frontend="+frontendRef)
	if err == nil {
		t.Fatalf("deploy succeeded on moto, whose CodeDeploy never finishes\nstdout: %s\nstderr: %s", out, errOut)
	}
	if !strings.Contains(errOut, "backend: deployment ") || !strings.Contains(errOut, "service backend") || strings.Contains(errOut, "goroutine") {
		t.Errorf("deploy error is not clear\nstdout: %s\nstderr: %s", out, errOut)
	}
	h := e.history()
	if len(h) != 1 || h[0].Status == store.DeploymentSucceeded || h[0].Status == store.DeploymentInProgress || !strings.Contains(h[0].Reason, "service backend") {
		t.Fatalf("history %+v", h)
	}

	// The CodeDeploy deployment exists with the configuration from strategy.traffic.
	// Read with raw JSON: moto writes timestamps the SDK's deserializer rejects.
	ids, err := e.cd.ListDeployments(ctx, &codedeploy.ListDeploymentsInput{ApplicationName: aws.String("shop"), DeploymentGroupName: aws.String("staging-backend")})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids.Deployments) != 1 {
		t.Fatalf("CodeDeploy deployments %v, want 1 (frontend is not deployed after backend failed)", ids.Deployments)
	}
	body, _ := json.Marshal(map[string]string{"deploymentId": ids.Deployments[0]})
	req, _ := http.NewRequest("POST", e.moto+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "CodeDeploy_20141006.GetDeployment")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/codedeploy/aws4_request, SignedHeaders=host, Signature=x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var d struct {
		DeploymentInfo struct {
			DeploymentConfigName string
			Revision             struct{ AppSpecContent struct{ Content string } }
		} `json:"deploymentInfo"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("GetDeployment: %v\n%s", err, b)
	}
	if d.DeploymentInfo.DeploymentConfigName != "CodeDeployDefault.ECSCanary10Percent5Minutes" ||
		!strings.Contains(d.DeploymentInfo.Revision.AppSpecContent.Content, "task-definition/shop-staging-backend:1") ||
		!strings.Contains(d.DeploymentInfo.Revision.AppSpecContent.Content, "function:smoke") {
		t.Errorf("CodeDeploy deployment %s", b)
	}
}

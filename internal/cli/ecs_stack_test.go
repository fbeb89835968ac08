package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/cutoverdev/cutover/internal/platform/ecs"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// TestECSDeployFromExportedStack is the one path from export to deploy:
// `cutover export cloudformation`, the shared and app stacks created from
// its templates in moto's CloudFormation, then `cutover deploy` with an ecs
// section that names only the region and the stack; everything else comes
// from the stack's outputs.
func TestECSDeployFromExportedStack(t *testing.T) {
	testenv.RequireDocker(t) // history opens the local session too
	e := &ecsE2E{t: t, moto: startMoto(t), bin: testenv.CutoverBinary(t), home: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	e.file = filepath.Join(dir, "cutover.yaml")
	// Desired count 0: moto runs no tasks and completes such a deployment at once.
	y := `version: 1
project: shop
services:
  backend: { image: shop/backend:1, port: 3001, route: { path_prefix: /api }, desired_count: 0, stop_timeout: 20s, env: { MODE: prod } }
  frontend: { image: shop/frontend:1, port: 80, route: { path_prefix: / }, desired_count: 0 }
environments:
  staging:
    platform: ecs
    strategy: { type: rolling }
    ecs:
      region: us-east-1
      endpoint: ` + e.moto + `
      stack: shop-app-staging
`
	if err := os.WriteFile(e.file, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := e.run("export", "cloudformation", "--dir", filepath.Join(dir, "cf"), "--format", "json"); err != nil {
		t.Fatalf("export: %v\n%s%s", err, out, errOut)
	}

	outputs := createExportedStacks(t, ctx, e.moto, filepath.Join(dir, "cf"), "staging", nil)
	c, err := ecs.NewClients(ctx, ecs.ClientOptions{Region: "us-east-1", Endpoint: e.moto, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}

	out, errOut, err := e.run("deploy", "staging", "--image", "backend="+backendRef, "--image", "frontend="+frontendRef)
	if err != nil {
		t.Fatalf("deploy: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if h := e.history(); len(h) != 1 || h[0].Status != store.DeploymentSucceeded {
		t.Fatalf("history %+v", h)
	}
	svc, err := c.ECS.DescribeServices(ctx, &awsecs.DescribeServicesInput{Cluster: aws.String(outputs["StagingClusterName"]), Services: []string{"backend"}})
	if err != nil || len(svc.Services) != 1 {
		t.Fatalf("backend service in the stack's cluster: %v %+v", err, svc)
	}
	td, err := c.ECS.(*awsecs.Client).DescribeTaskDefinition(ctx, &awsecs.DescribeTaskDefinitionInput{TaskDefinition: svc.Services[0].TaskDefinition})
	if err != nil {
		t.Fatal(err)
	}
	d, cd := td.TaskDefinition, td.TaskDefinition.ContainerDefinitions[0]
	checks := map[string][2]string{
		"image":          {aws.ToString(cd.Image), backendRef},
		"family":         {aws.ToString(d.Family), "shop-staging-backend"},
		"task role":      {aws.ToString(d.TaskRoleArn), outputs["StagingBackendTaskRoleArn"]},
		"execution role": {aws.ToString(d.ExecutionRoleArn), outputs["StagingExecutionRoleArn"]},
		"log group":      {cd.LogConfiguration.Options["awslogs-group"], outputs["StagingLogGroupName"]},
	}
	for what, c := range checks {
		if c[0] != c[1] || c[1] == "" {
			t.Errorf("%s: task definition has %q, stack says %q", what, c[0], c[1])
		}
	}
	if !aws.ToBool(cd.ReadonlyRootFilesystem) || aws.ToInt32(cd.StopTimeout) != 20 {
		t.Errorf("read-only root %v, stop timeout %d", aws.ToBool(cd.ReadonlyRootFilesystem), aws.ToInt32(cd.StopTimeout))
	}
	if strings.Contains(errOut, "panic") {
		t.Errorf("stderr: %s", errOut)
	}
}

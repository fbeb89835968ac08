package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// TestLogsEnvServiceOnECS: `cutover logs ENV SERVICE` reads the service's
// task logs from CloudWatch Logs (moto) and leaves `cutover logs EXECUTION`
// to executions; an environment without a service, or a first argument that
// is no environment, is a usage error that says which form is which.
func TestLogsEnvServiceOnECS(t *testing.T) {
	moto := testenv.StartMoto(t)
	testenv.FakeAWSCredentials(t)
	t.Setenv("CUTOVER_HOME", t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	cw := cloudwatchlogs.NewFromConfig(cfg, func(o *cloudwatchlogs.Options) { o.BaseEndpoint = aws.String(moto) })
	group := "/shop/staging"
	if _, err := cw.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for stream, msg := range map[string]string{"backend/backend/0123456789abcdef": "GET /api/health 200", "frontend/frontend/fedcba9876543210": "GET / 200"} {
		if _, err := cw.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream)}); err != nil {
			t.Fatal(err)
		}
		if _, err := cw.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream),
			LogEvents: []logtypes.InputLogEvent{{Timestamp: aws.Int64(now.Add(-time.Minute).UnixMilli()), Message: aws.String(msg)}}}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	y := `version: 1
project: shop
services:
  backend: { image: shop/backend:1, port: 3001, route: { path_prefix: /api } }
  frontend: { image: shop/frontend:1, port: 80, route: { path_prefix: / } }
environments:
  staging:
    platform: ecs
    ecs:
      region: us-east-1
      endpoint: ` + moto + `
      cluster: shop
      log_group: ` + group + `
      subnets: [subnet-0a1b2c3d]
      services: { backend: { service: shop-backend }, frontend: { service: shop-frontend } }
`
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := run(t, dir, "logs", "staging", "backend", "--since", "1h")
	if code != 0 || !strings.Contains(out, "0123456789ab GET /api/health 200") || strings.Contains(out, "GET / 200") {
		t.Fatalf("logs staging backend: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, _, errOut = run(t, dir, "logs", "staging")
	if code == 0 || !strings.Contains(errOut, "cutover logs staging needs a SERVICE: cutover logs staging SERVICE (services: backend, frontend)") {
		t.Errorf("logs staging: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = run(t, dir, "logs", "prod", "backend")
	if code == 0 || !strings.Contains(errOut, `"prod" is not an environment of cutover.yaml (environments: staging)`) {
		t.Errorf("logs prod backend: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = run(t, dir, "logs", "staging", "db")
	if code == 0 || !strings.Contains(errOut, `no service named "db" (services: backend, frontend)`) {
		t.Errorf("logs staging db: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = run(t, dir, "logs", "staging", "backend", "--tail", "5")
	if code == 0 || !strings.Contains(errOut, "--tail is for the local platform; staging is on ecs") {
		t.Errorf("--tail on ecs: exit %d, stderr %q", code, errOut)
	}
	// One argument that is no environment is an execution, as before.
	code, _, errOut = run(t, dir, "logs", "01NOSUCHEXECUTION")
	if code == 0 || strings.Contains(errOut, "SERVICE") {
		t.Errorf("logs EXECUTION: exit %d, stderr %q", code, errOut)
	}
}

package cli_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	cfn "github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/cutoverdev/cutover/internal/platform/ecs"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// createExportedStacks creates, in moto's CloudFormation, the shared stack
// and environment env's app stack from the templates `cutover export
// cloudformation --format json` wrote to cfDir (project shop), with an ACM
// certificate for the environment's domain (moto's ELBv2 checks that a
// listener's certificate exists); patch, when given, edits a template
// before it is created (for what moto's CloudFormation cannot create). It
// returns the app stack's outputs.
func createExportedStacks(t *testing.T, ctx context.Context, moto, cfDir, env string, patch func(file string, body []byte) []byte) map[string]string {
	t.Helper()
	c, err := ecs.NewClients(ctx, ecs.ClientOptions{Region: "us-east-1", Endpoint: moto, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	client := c.CloudFormation.(*cfn.Client)
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1")) // startMoto's fake credentials
	if err != nil {
		t.Fatal(err)
	}
	domain := env + ".shop.example.com"
	cert, err := acm.NewFromConfig(awsCfg, func(o *acm.Options) { o.BaseEndpoint = aws.String(moto) }).
		RequestCertificate(ctx, &acm.RequestCertificateInput{DomainName: aws.String(domain)})
	if err != nil {
		t.Fatal(err)
	}
	app := "shop-app-" + env
	for _, stack := range []struct{ name, file string }{{"shop-shared", "shared"}, {app, "app-" + env}} {
		body, err := os.ReadFile(filepath.Join(cfDir, stack.file+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if patch != nil {
			body = patch(stack.file, body)
		}
		in := &cfn.CreateStackInput{StackName: aws.String(stack.name), TemplateBody: aws.String(string(body)), Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityIam}}
		if stack.file != "shared" {
			in.Parameters = []cfntypes.Parameter{
				{ParameterKey: aws.String("CertificateArn"), ParameterValue: cert.CertificateArn},
				{ParameterKey: aws.String("DomainName"), ParameterValue: aws.String(domain)},
			}
		}
		if _, err := client.CreateStack(ctx, in); err != nil {
			t.Fatalf("CreateStack %s: %v", stack.name, err)
		}
		w := cfn.NewStackCreateCompleteWaiter(client, func(o *cfn.StackCreateCompleteWaiterOptions) {
			o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
		})
		if err := w.Wait(ctx, &cfn.DescribeStacksInput{StackName: aws.String(stack.name)}, time.Minute); err != nil {
			t.Fatalf("stack %s: %v", stack.name, err)
		}
	}
	outputs, err := ecs.StackOutputs(ctx, client, app)
	if err != nil {
		t.Fatal(err)
	}
	return outputs
}

// TestLogsFromTheExportedStack: `cutover logs ENV SERVICE [-f]` on an ECS
// environment whose cutover.yaml names only the region and the app stack:
// the log group comes from the stack's outputs (export.ECSFromOutputs), the
// stream prefix from the service (the exported task definitions'
// awslogs-stream-prefix). The stacks are the exported templates created in
// moto's CloudFormation; the events are put in moto's CloudWatch Logs where
// the awslogs driver of an exported task definition would write them
// (PREFIX/CONTAINER/TASK). The real binary runs, and -f is followed until
// SIGINT, which ends it with status 0.
func TestLogsFromTheExportedStack(t *testing.T) {
	moto := startMoto(t)
	bin, home := testenv.CutoverBinary(t), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	file := filepath.Join(dir, "cutover.yaml")
	y := `version: 1
project: shop
services:
  backend: { image: shop/backend:1, port: 3001, route: { path_prefix: /api } }
  frontend: { image: shop/frontend:1, port: 80, route: { path_prefix: / } }
environments:
  staging:
    platform: ecs
    strategy: { type: rolling }
    ecs:
      region: us-east-1
      endpoint: ` + moto + `
      stack: shop-app-staging
`
	if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	cutover := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, append(args, "-f", file, "--home", home)...)
		cmd.Env = append(os.Environ(), "CUTOVER_HOME="+home) // with startMoto's AWS settings
		return cmd
	}
	if out, err := cutover("export", "cloudformation", "--dir", filepath.Join(dir, "cf"), "--format", "json").CombinedOutput(); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}

	// Before the app stack exists: an error that names the stack.
	out, err := cutover("logs", "staging", "backend").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "shop-app-staging") {
		t.Fatalf("logs without the stack: %v\n%s", err, out)
	}

	outputs := createExportedStacks(t, ctx, moto, filepath.Join(dir, "cf"), "staging", nil)
	group := outputs["StagingLogGroupName"]
	if group != "/cutover/shop/staging" {
		t.Fatalf("the stack's log group output is %q", group)
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	cw := cloudwatchlogs.NewFromConfig(awsCfg, func(o *cloudwatchlogs.Options) { o.BaseEndpoint = aws.String(moto) })
	put := func(stream string, at time.Time, msg string) {
		t.Helper()
		_, _ = cw.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream)})
		if _, err := cw.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream),
			LogEvents: []logtypes.InputLogEvent{{Timestamp: aws.Int64(at.UnixMilli()), Message: aws.String(msg)}}}); err != nil {
			t.Fatalf("PutLogEvents %s: %v", stream, err)
		}
	}
	now := time.Now()
	put("backend/backend/0123456789abcdef0123456789abcdef", now.Add(-2*time.Hour), "too old for --since 1h")
	put("backend/backend/0123456789abcdef0123456789abcdef", now.Add(-2*time.Minute), "GET /api/health 200")
	put("backend/backend/0123456789abcdef0123456789abcdef", now.Add(-time.Minute), "GET /api/patients 200")
	put("frontend/frontend/fedcba9876543210fedcba9876543210", now.Add(-time.Minute), "GET / 200")

	out, err = cutover("logs", "staging", "backend", "--since", "1h").Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(lines) != 2 || !strings.HasSuffix(lines[0], " 0123456789ab GET /api/health 200") || !strings.HasSuffix(lines[1], " 0123456789ab GET /api/patients 200") {
		t.Fatalf("logs staging backend: %v\n%s", err, out)
	}

	// -f: the lines so far, then new events (and a new task's stream) as
	// they arrive, each once, until SIGINT.
	follow := cutover("logs", "staging", "backend", "--since", "1h", "--follow")
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	follow.Stderr = &stderr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			got <- sc.Text()
		}
		close(got)
	}()
	var followed []string
	waitFor := func(n int) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for len(followed) < n {
			select {
			case l, ok := <-got:
				if !ok {
					t.Fatalf("logs -f ended after %q: %s", followed, stderr.String())
				}
				followed = append(followed, l)
			case <-deadline:
				_ = follow.Process.Kill()
				t.Fatalf("logs -f: waited 20s for %d lines, have %q", n, followed)
			}
		}
	}
	waitFor(2)
	put("backend/backend/0123456789abcdef0123456789abcdef", time.Now(), "POST /api/appointments 201")
	put("backend/backend/aaaabbbbccccddddaaaabbbbccccdddd", time.Now(), "a new task started")
	put("frontend/frontend/fedcba9876543210fedcba9876543210", time.Now(), "GET /app.js 200")
	waitFor(4)
	time.Sleep(4500 * time.Millisecond) // two more polls (every 2s): nothing may repeat
	if err := follow.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for l := range got {
		followed = append(followed, l)
	}
	if err := follow.Wait(); err != nil {
		t.Fatalf("logs -f after SIGINT: %v (want status 0)\n%s", err, stderr.String())
	}
	joined := strings.Join(followed, "\n")
	if len(followed) != 4 || !strings.Contains(followed[2]+followed[3], "0123456789ab POST /api/appointments 201") ||
		!strings.Contains(followed[2]+followed[3], "aaaabbbbcccc a new task started") || strings.Contains(joined, "app.js") {
		t.Fatalf("logs -f printed:\n%s", joined)
	}
}

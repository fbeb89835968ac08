package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/testenv"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	cfn "github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
)

// nativeBluemed is the example with production on ECS-native blue/green,
// its settings read from its app stack.
func nativeBluemed(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(bluemed)
	if err != nil {
		t.Fatal(err)
	}
	prod := cfg.Environments["production"]
	prod.Platform = config.PlatformECS
	prod.ECS = &config.ECS{Region: "us-east-1", Stack: "bluemed-app-production", BlueGreen: config.BlueGreenECS}
	return cfg
}

// writeBluemed writes the example's templates, and those of its variants
// with ECS-native blue/green in production (files prefixed "native-") and
// with the frontend on S3 and CloudFront ("static-").
func writeBluemed(t *testing.T, format string) (string, []File) {
	t.Helper()
	files := loadBluemed(t)
	native, err := Templates(nativeBluemed(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range native {
		native[i].Name = "native-" + native[i].Name
	}
	files = append(files, native...)
	static, err := Templates(staticBluemed(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range static {
		static[i].Name = "static-" + static[i].Name
	}
	files = append(files, static...)
	dir := t.TempDir()
	if _, err := Write(dir, format, files); err != nil {
		t.Fatal(err)
	}
	return dir, files
}

func TestCfnLint(t *testing.T) {
	lint := testenv.RequireTool(t, "cfn-lint", "cfn-lint")
	dir, files := writeBluemed(t, "yaml")
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(dir, f.Name+".yaml"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// JSON output lists every finding with its level; warnings are allowed
	// (and logged), errors are not.
	out, err := exec.CommandContext(ctx, lint, append([]string{"--format", "json"}, paths...)...).Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("cfn-lint: %v", err)
	}
	var findings []struct {
		Level    string
		Message  string
		Filename string
		Rule     struct{ Id string }
	}
	if err := json.Unmarshal(out, &findings); err != nil {
		t.Fatalf("cfn-lint output is not JSON: %v\n%s", err, out)
	}
	for _, f := range findings {
		line := fmt.Sprintf("%s %s %s: %s", f.Level, f.Rule.Id, filepath.Base(f.Filename), f.Message)
		if f.Level == "Error" {
			t.Error(line)
		} else {
			t.Log(line)
		}
	}
	t.Logf("cfn-lint: %d findings, none of them errors", len(findings))
}

func TestCheckov(t *testing.T) {
	checkov := testenv.RequireTool(t, "checkov", "checkov")
	dir, _ := writeBluemed(t, "yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// --skip-download: no calls to Prisma Cloud (the tests run offline).
	cmd := exec.CommandContext(ctx, checkov, "-d", dir, "--framework", "cloudformation", "--output", "json", "--skip-download")
	cmd.Env = append(os.Environ(), "BC_SKIP_MAPPING=TRUE")
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("checkov: %v", err)
	}
	type check struct {
		CheckID     string `json:"check_id"`
		CheckName   string `json:"check_name"`
		Resource    string `json:"resource"`
		FilePath    string `json:"file_path"`
		CheckResult struct {
			Result          string `json:"result"`
			SuppressComment string `json:"suppress_comment"`
		} `json:"check_result"`
	}
	var report struct {
		Results struct {
			Passed  []check `json:"passed_checks"`
			Failed  []check `json:"failed_checks"`
			Skipped []check `json:"skipped_checks"`
		} `json:"results"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &report); err != nil {
		t.Fatalf("checkov output is not one JSON report: %v\n%.2000s", err, out)
	}
	for _, c := range report.Results.Failed {
		t.Errorf("checkov failed %s (%s) on %s in %s", c.CheckID, c.CheckName, c.Resource, filepath.Base(c.FilePath))
	}
	for _, c := range report.Results.Skipped {
		if strings.TrimSpace(c.CheckResult.SuppressComment) == "" {
			t.Errorf("checkov check %s on %s is skipped without a reason", c.CheckID, c.Resource)
		}
		t.Logf("skipped %s on %s: %s", c.CheckID, c.Resource, c.CheckResult.SuppressComment)
	}
	if len(report.Results.Passed) == 0 {
		t.Fatalf("checkov passed no checks: it did not read the templates\n%.2000s", out)
	}
	t.Logf("checkov: %d passed, %d failed, %d skipped", len(report.Results.Passed), len(report.Results.Failed), len(report.Results.Skipped))
}

// motoUnsupported are the resource types moto's CloudFormation (5.2) does
// not implement: it warns and leaves them out of the stack, so moto checks
// neither their properties nor their creation (cfn-lint and checkov still
// check them). Every other resource must be created.
var motoUnsupported = map[string]bool{
	"AWS::CloudWatch::Alarm":                       true,
	"AWS::CodeBuild::Project":                      true,
	"AWS::CodeDeploy::Application":                 true,
	"AWS::CodeDeploy::DeploymentConfig":            true,
	"AWS::CodeDeploy::DeploymentGroup":             true,
	"AWS::CodePipeline::Pipeline":                  true,
	"AWS::CodeStarConnections::Connection":         true,
	"AWS::CodeStarNotifications::NotificationRule": true,
	"AWS::SNS::TopicPolicy":                        true,
	"AWS::SNS::Subscription":                       true,
	"AWS::SecretsManager::Secret":                  true,
	"AWS::Synthetics::Canary":                      true,
}

// TestStacksCreateInMoto creates the four stacks, in order, in moto's
// CloudFormation: each must reach CREATE_COMPLETE with the exports of the
// ones before it imported, and create every resource of a type moto
// implements.
func TestStacksCreateInMoto(t *testing.T) {
	endpoint := testenv.StartMoto(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")))
	if err != nil {
		t.Fatal(err)
	}
	client := cfn.NewFromConfig(awsCfg, func(o *cfn.Options) { o.BaseEndpoint = aws.String(endpoint) })

	// moto's ELBv2 checks that a listener's certificate exists in its ACM.
	cert, err := acm.NewFromConfig(awsCfg, func(o *acm.Options) { o.BaseEndpoint = aws.String(endpoint) }).
		RequestCertificate(ctx, &acm.RequestCertificateInput{DomainName: aws.String("bluemed.example.com")})
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{
		"CertificateArn":     aws.ToString(cert.CertificateArn),
		"RepositoryId":       "cutoverdev/bluemed",
		"CutoverDownloadUrl": "https://example.com/cutover",
		"CutoverSha256":      strings.Repeat("ab", 32),
		"DomainName":         "bluemed.example.com",
	}
	for _, f := range loadBluemed(t) {
		body, err := Render(f.Template, "json")
		if err != nil {
			t.Fatal(err)
		}
		in := &cfn.CreateStackInput{StackName: aws.String(f.Stack), TemplateBody: aws.String(string(body)),
			Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityIam}}
		for name := range f.Template.Parameters {
			in.Parameters = append(in.Parameters, cfntypes.Parameter{ParameterKey: aws.String(name), ParameterValue: aws.String(params[name])})
		}
		if _, ok := f.Template.Parameters["ImageTag"]; ok {
			in.Parameters = slices.DeleteFunc(in.Parameters, func(p cfntypes.Parameter) bool { return *p.ParameterKey == "ImageTag" })
		}
		if _, err := client.CreateStack(ctx, in); err != nil {
			t.Fatalf("CreateStack %s: %v", f.Stack, err)
		}
		w := cfn.NewStackCreateCompleteWaiter(client, func(o *cfn.StackCreateCompleteWaiterOptions) {
			o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
		})
		if err := w.Wait(ctx, &cfn.DescribeStacksInput{StackName: aws.String(f.Stack)}, time.Minute); err != nil {
			t.Fatalf("stack %s did not reach CREATE_COMPLETE: %v%s", f.Stack, err, stackEvents(ctx, client, f.Stack))
		}
		res, err := client.ListStackResources(ctx, &cfn.ListStackResourcesInput{StackName: aws.String(f.Stack)})
		if err != nil {
			t.Fatal(err)
		}
		created := map[string]bool{}
		for _, r := range res.StackResourceSummaries {
			created[aws.ToString(r.LogicalResourceId)] = true
		}
		skipped := map[string]bool{}
		for id, r := range f.Template.Resources {
			var head struct{ Condition string }
			if b, err := json.Marshal(r); err == nil && json.Unmarshal(b, &head) == nil && head.Condition != "" {
				// Optional parts (database, isolated network) are off by
				// default. moto is no judge of them: it creates a resource a
				// conditional output refers to whatever the condition (the
				// database's), and skips the others. TestOptionalDatabase and
				// TestIsolatedNetworkOption check the conditions themselves.
				continue
			}
			if !created[id] {
				skipped[r.AWSCloudFormationType()] = true
				if !motoUnsupported[r.AWSCloudFormationType()] {
					t.Errorf("%s: moto did not create %s (%s), a type it implements", f.Stack, id, r.AWSCloudFormationType())
				}
			}
		}
		var types []string
		for typ := range skipped {
			types = append(types, typ)
		}
		slices.Sort(types)
		t.Logf("%s: CREATE_COMPLETE, %d of %d resources created by moto; types moto does not implement: %v",
			f.Stack, len(created), len(f.Template.Resources), types)
	}
}

func stackEvents(ctx context.Context, client *cfn.Client, stack string) string {
	ev, err := client.DescribeStackEvents(ctx, &cfn.DescribeStackEventsInput{StackName: aws.String(stack)})
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range ev.StackEvents {
		if r := aws.ToString(e.ResourceStatusReason); r != "" {
			fmt.Fprintf(&b, "\n  %s %s: %s", aws.ToString(e.LogicalResourceId), e.ResourceStatus, r)
		}
	}
	return b.String()
}

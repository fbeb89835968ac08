package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// scripts/aws-smoke.sh (make aws-smoke) runs against a real account only by
// hand. These tests run the part moto serves (--until stacks, with
// AWS_ENDPOINT_URL: the aws CLI and cutover both honour it), so the script
// cannot rot: the templates go through its bucket into stacks, the first
// images are registered, each service's task definition must run its
// repository's "initial" image, and `cutover logs` reads the stack's
// outputs. Moto runs no ECS task, no CodeDeploy deployment and serves no
// registry, so nothing after the stacks runs here. They also attack its
// guards: no run without the account's confirmation, none next to a stack
// of the same name (which it must not delete), cleanup on failure and on
// SIGTERM, and no secret in its output.

// smokeSecret is the secret access key the script runs with: it must never
// appear in its output.
const smokeSecret = "smoke-secret-8Qz1xVb7Lr0pWn3K"

// smokeEnv is one moto server and what the script needs to run against it.
type smokeEnv struct {
	t      *testing.T
	moto   string
	aws    string
	script string
	env    []string
	cert   string
}

func newSmokeEnv(t *testing.T) *smokeEnv {
	t.Helper()
	s := &smokeEnv{t: t, aws: testenv.RequireAWSCLI(t), moto: startMoto(t)}
	testenv.RequireCommand(t, "jq", "apt-get install jq")
	script, err := filepath.Abs("../../scripts/aws-smoke.sh")
	if err != nil {
		t.Fatal(err)
	}
	s.script = script
	t.Setenv("AWS_SECRET_ACCESS_KEY", smokeSecret)
	t.Setenv("AWS_DEFAULT_REGION", "us-east-1") // aws CLI v1 reads this one, v2 both
	t.Setenv("AWS_ENDPOINT_URL", s.moto)
	t.Setenv("AWS_PAGER", "")
	t.Setenv("AWS_SMOKE_CONFIRM_ACCOUNT", "")
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN"} { // empty ones confuse the aws CLI
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	var cert struct{ CertificateArn string }
	s.awsJSON(&cert, "acm", "request-certificate", "--domain-name", "bluemed.example.com", "--subject-alternative-names", "staging.bluemed.example.com")
	s.cert = cert.CertificateArn
	s.env = append(os.Environ(), "CUTOVER="+testenv.CutoverBinary(t), "CUTOVER_HOME="+t.TempDir(),
		"PRODUCTION_DOMAIN=bluemed.example.com", "STAGING_DOMAIN=staging.bluemed.example.com",
		"TMPDIR="+t.TempDir()) // the work directory a failed run keeps goes with the test
	return s
}

// awsJSON runs the aws CLI against moto and decodes its JSON output.
func (s *smokeEnv) awsJSON(out any, args ...string) {
	s.t.Helper()
	b, err := exec.Command(s.aws, append(args, "--output", "json")...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			s.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		s.t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
}

// start runs the script with extra environment and arguments; its
// combined output goes to the returned buffer.
func (s *smokeEnv) start(ctx context.Context, env []string, args ...string) (*exec.Cmd, *testenv.Buffer) {
	s.t.Helper()
	var out testenv.Buffer
	cmd := exec.CommandContext(ctx, "bash", append([]string{s.script}, args...)...)
	cmd.Env = append(slices.Clone(s.env), env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	return cmd, &out
}

// run runs the script to its end and returns its exit status and output.
func (s *smokeEnv) run(env []string, args ...string) (int, string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd, out := s.start(ctx, env, args...)
	err := cmd.Wait()
	if strings.Contains(out.String(), smokeSecret) {
		s.t.Errorf("the output shows the secret access key:\n%s", out)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		s.t.Fatalf("aws-smoke: %v\n%s", err, out)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// leftovers lists what the script may have created and still exists in
// moto: stacks not deleted, buckets, repositories and secrets. Moto's
// CloudFormation cannot delete the shared stack's VPC (it deletes neither
// its VPC endpoints nor its internet gateway's attachment first and answers
// DependencyViolation), so bluemed-shared is reported apart: the script
// must have tried and said so.
func (s *smokeEnv) leftovers() []string {
	s.t.Helper()
	var left []string
	var stacks struct {
		StackSummaries []struct{ StackName, StackStatus string }
	}
	s.awsJSON(&stacks, "cloudformation", "list-stacks")
	for _, st := range stacks.StackSummaries {
		if st.StackStatus == "DELETE_COMPLETE" {
			continue
		}
		left = append(left, "stack "+st.StackName+" "+st.StackStatus)
	}
	var buckets struct{ Buckets []struct{ Name string } }
	s.awsJSON(&buckets, "s3api", "list-buckets")
	for _, b := range buckets.Buckets {
		left = append(left, "bucket "+b.Name)
	}
	var repos struct {
		Repositories []struct{ RepositoryName string }
	}
	s.awsJSON(&repos, "ecr", "describe-repositories")
	for _, r := range repos.Repositories {
		left = append(left, "repository "+r.RepositoryName)
	}
	var secrets struct{ SecretList []struct{ Name string } }
	s.awsJSON(&secrets, "secretsmanager", "list-secrets")
	for _, x := range secrets.SecretList {
		left = append(left, "secret "+x.Name)
	}
	return left
}

// cleanedUp fails the test unless everything the run created is gone, but
// for moto's undeletable shared stack, which the script must report.
func (s *smokeEnv) cleanedUp(code int, output string) {
	s.t.Helper()
	left := s.leftovers()
	if !strings.Contains(output, "=== cleanup: deleting the stacks this run created") {
		s.t.Errorf("no cleanup ran:\n%s", output)
	}
	if len(left) > 0 {
		s.t.Errorf("left after the run: %v\n%s", left, output)
	}
	if strings.Contains(output, "deleting bluemed-shared") && strings.Contains(output, "DependencyViolation") &&
		(code == 0 || !strings.Contains(output, "aws-smoke: NOT deleted: bluemed-shared")) {
		s.t.Errorf("the shared stack's deletion failed, but the script did not report it (exit %d):\n%s", code, output)
	}
}

// TestAWSSmokeScriptUntilStacksOnMoto runs the script's moto part end to
// end and checks that it removed what it created.
func TestAWSSmokeScriptUntilStacksOnMoto(t *testing.T) {
	s := newSmokeEnv(t)
	code, out := s.run([]string{"CERTIFICATE_ARN=" + s.cert}, "--confirm-account", "123456789012", "--until", "stacks")
	for _, want := range []string{
		"created stack bluemed-shared", "created stack bluemed-app-staging", "created stack bluemed-app-production", "created stack bluemed-pipeline",
		"staging backend: 123456789012.dkr.ecr.us-east-1.amazonaws.com/bluemed/backend:initial",
		"production frontend: 123456789012.dkr.ecr.us-east-1.amazonaws.com/bluemed/frontend:initial",
		"aws-smoke: passed until stacks",
		"deleting bluemed-pipeline", "deleting bluemed-app-production", "deleting bluemed-app-staging", "deleting bluemed-shared",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if strings.Contains(out, "amazonaws.com/\": dial") || strings.Contains(out, "no such host") {
		t.Errorf("something asked AWS instead of AWS_ENDPOINT_URL:\n%s", out)
	}
	s.cleanedUp(code, out)
	if t.Failed() {
		t.Logf("exit %d, output:\n%s", code, out)
	}
}

// TestAWSSmokeScriptGuards: the script does nothing without the account's
// confirmation, with another account's, against an endpoint without
// --until stacks, or next to a stack of a name it would create (which it
// leaves alone).
func TestAWSSmokeScriptGuards(t *testing.T) {
	s := newSmokeEnv(t)
	sh := testenv.RequireCommand(t, "shellcheck", "apt-get install shellcheck")
	if out, err := exec.Command(sh, s.script).CombinedOutput(); err != nil {
		t.Errorf("shellcheck %s: %v\n%s", s.script, err, out)
	}
	cert := "CERTIFICATE_ARN=" + s.cert
	for _, c := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"no confirmation", []string{cert}, []string{"--until", "stacks"}, 1, "run again with --confirm-account 123456789012"},
		{"another account", []string{cert}, []string{"--confirm-account", "999999999999", "--until", "stacks"}, 1,
			"--confirm-account 999999999999, but the credentials are for account 123456789012: nothing done"},
		{"an endpoint, all steps", []string{cert}, []string{"--confirm-account", "123456789012"}, 2, "add --until stacks"},
		{"unknown step", []string{cert}, []string{"--confirm-account", "123456789012", "--until", "release"}, 2, "the only step to stop after is stacks"},
		{"no certificate", nil, []string{"--confirm-account", "123456789012", "--until", "stacks"}, 1, "set CERTIFICATE_ARN"},
	} {
		code, out := s.run(c.env, c.args...)
		if code != c.code || !strings.Contains(out, c.want) || strings.Contains(out, "===") {
			t.Errorf("%s: exit %d, want %d and %q before any step:\n%s", c.name, code, c.code, c.want, out)
		}
	}
	if left := s.leftovers(); len(left) > 0 {
		t.Fatalf("a refused run created %v", left)
	}

	// A stack of a name it would create: refused, and that stack stays.
	tmpl := filepath.Join(t.TempDir(), "other.json")
	if err := os.WriteFile(tmpl, []byte(`{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.awsJSON(nil, "cloudformation", "create-stack", "--stack-name", "bluemed-app-staging", "--template-body", "file://"+tmpl)
	code, out := s.run([]string{cert}, "--confirm-account", "123456789012", "--until", "stacks")
	if code != 1 || !strings.Contains(out, "stack bluemed-app-staging already exists in account 123456789012") || strings.Contains(out, "===") {
		t.Errorf("next to bluemed-app-staging: exit %d:\n%s", code, out)
	}
	if left := s.leftovers(); !slices.Equal(left, []string{"stack bluemed-app-staging CREATE_COMPLETE"}) {
		t.Errorf("after the refused run: %v, want only the stack that was there before", left)
	}
}

// TestAWSSmokeScriptCleansUpOnFailureAndSignal: a step that fails after
// every stack exists and a SIGTERM while it runs both end in the cleanup of
// what the run created. The failing step is a cutover that fails its first
// `logs` (a wrapper around the real binary): a stack that fails to create
// cannot stand in, because moto's CreateStack fails at once and leaves a
// CREATE_PENDING stack that DescribeStacks does not know, where AWS leaves
// a ROLLBACK_COMPLETE stack that the cleanup deletes.
func TestAWSSmokeScriptCleansUpOnFailureAndSignal(t *testing.T) {
	t.Run("failure", func(t *testing.T) {
		s := newSmokeEnv(t)
		wrapper := filepath.Join(t.TempDir(), "cutover")
		sh := "#!/bin/sh\nif [ \"$1\" = logs ]; then echo 'cutover: injected failure' >&2; exit 3; fi\nexec " + testenv.CutoverBinary(t) + " \"$@\"\n"
		if err := os.WriteFile(wrapper, []byte(sh), 0o755); err != nil {
			t.Fatal(err)
		}
		code, out := s.run([]string{"CERTIFICATE_ARN=" + s.cert, "CUTOVER=" + wrapper}, "--confirm-account", "123456789012", "--until", "stacks")
		if code != 3 || !strings.Contains(out, "created stack bluemed-pipeline") || !strings.Contains(out, "aws-smoke: failed (status 3)") || strings.Contains(out, "passed") {
			t.Fatalf("with a failing step: exit %d, want 3:\n%s", code, out)
		}
		s.cleanedUp(code, out)
	})
	t.Run("SIGTERM", func(t *testing.T) {
		s := newSmokeEnv(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd, out := s.start(ctx, []string{"CERTIFICATE_ARN=" + s.cert}, "--confirm-account", "123456789012", "--until", "stacks")
		for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(out.String(), "created stack bluemed-shared"); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("no shared stack after 2 minutes:\n%s", out)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// A second SIGTERM once the cleanup runs does not abandon it.
		for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(out.String(), "=== cleanup"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("no cleanup 2 minutes after SIGTERM:\n%s", out)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("second SIGTERM: %v (the cleanup ended within moments?)\n%s", err, out)
		}
		err := cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		if err == nil || code != 143 || strings.Contains(out.String(), "passed") || !strings.Contains(out.String(), "the cleanup goes on") {
			t.Fatalf("after SIGTERM: %v, exit %d, want 143 and a cleanup that goes on:\n%s", err, code, out)
		}
		s.cleanedUp(code, out.String())
	})
}

// Attack: cleanup force-deletes the repositories, buckets and secrets its
// stacks list. A resource whose creation failed is listed too (CREATE_FAILED,
// with the name it was given) when one of that name existed already:
// someone else's, created after the script's checks, or missed by a check
// that could not read it. Cleanup deleted it, images and all; it must
// delete only what its stacks created. Moto fails such a CreateStack at
// once instead of listing the failed resource, so an aws wrapper adds it to
// the shared stack's list (a stand-in for AWS's answer, the one call
// changed); the repository itself is real, in moto, and must stay.
func TestAWSSmokeScriptLeavesWhatItsStacksFailedToCreate(t *testing.T) {
	s := newSmokeEnv(t)
	s.awsJSON(nil, "ecr", "create-repository", "--repository-name", "team/keep")
	dir := t.TempDir()
	wrapper := `#!/bin/sh
case " $* " in
*" list-stack-resources --stack-name bluemed-shared "*)
	` + s.aws + ` "$@" | jq '.StackResourceSummaries += [{"LogicalResourceId": "RepositoryBackend", "PhysicalResourceId": "team/keep",
		"ResourceType": "AWS::ECR::Repository", "ResourceStatus": "CREATE_FAILED", "ResourceStatusReason": "team/keep already exists"}]' ;;
*) exec ` + s.aws + ` "$@" ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "aws"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out := s.run([]string{"CERTIFICATE_ARN=" + s.cert, "PATH=" + dir + ":" + os.Getenv("PATH")}, "--confirm-account", "123456789012", "--until", "stacks")
	if !strings.Contains(out, "aws-smoke: passed until stacks") || !strings.Contains(out, "deleting bluemed-shared") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if left := s.leftovers(); !slices.Equal(left, []string{"repository team/keep"}) {
		t.Errorf("after the run: %v, want the repository that was not the run's, and nothing else\n%s", left, out)
	}
}

// Attack: a check that could not look (access denied, throttled) was taken
// for "not there", and the run went on next to what it could not see. The
// run stops, saying why, before any step. (An aws wrapper answers the one
// call with AWS's access denied; everything else is moto's.)
func TestAWSSmokeScriptRefusesWhenACheckCannotLook(t *testing.T) {
	s := newSmokeEnv(t)
	dir := t.TempDir()
	wrapper := `#!/bin/sh
case " $* " in
*" ecr describe-repositories "*)
	echo "An error occurred (AccessDeniedException) when calling the DescribeRepositories operation: not authorized to perform ecr:DescribeRepositories" >&2
	exit 254 ;;
*) exec ` + s.aws + ` "$@" ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "aws"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out := s.run([]string{"CERTIFICATE_ARN=" + s.cert, "PATH=" + dir + ":" + os.Getenv("PATH")}, "--confirm-account", "123456789012", "--until", "stacks")
	if code != 1 || !strings.Contains(out, "aws-smoke: cannot tell whether ECR repository bluemed/backend exists: An error occurred (AccessDeniedException)") || strings.Contains(out, "===") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if left := s.leftovers(); len(left) > 0 {
		t.Errorf("a refused run created %v", left)
	}
}

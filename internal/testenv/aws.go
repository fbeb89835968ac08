package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// RequireAWSToolsEnv turns a missing moto, cfn-lint or checkov from a skip into a failure.
const RequireAWSToolsEnv = "CUTOVER_REQUIRE_AWS_TOOLS"

// RequireTool returns the path of a tool installed from PyPI (moto_server,
// cfn-lint, checkov): it skips t when the tool is missing, or fails it when
// CUTOVER_REQUIRE_AWS_TOOLS=1 (set by CI), so it never passes silently there.
func RequireTool(t testing.TB, name, pip string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	missing(t, RequireAWSToolsEnv, fmt.Sprintf("%s is not on PATH (install it with: pip install %s)", name, pip))
	return ""
}

// StartMoto runs moto_server (AWS APIs) on a free port of 127.0.0.1 until
// the test ends, and returns its URL. moto may fork workers, so it runs in
// its own process group, which is killed at the end; its output is shown
// when the test failed.
func StartMoto(t testing.TB) string {
	t.Helper()
	bin := RequireTool(t, "moto_server", "'moto[server]'")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var logs Buffer
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			t.Logf("moto_server output:\n%.4000s", logs.String())
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		select {
		case <-done:
			t.Fatalf("moto_server exited:\n%s", logs.String())
		default:
		}
		if resp, err := client.Get(url + "/moto-api/"); err == nil {
			resp.Body.Close()
			return url
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("moto_server did not answer on %s within 30s", url)
	return ""
}

// FakeAWSCredentials points the AWS SDK of this process (and of children
// started with os.Environ()) at static test credentials and no config files.
func FakeAWSCredentials(t testing.TB) {
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
}

// RequireAWSCLI returns the path of an aws CLI that runs (`aws --version`):
// a missing or broken one (such as awscli installed beside an older
// botocore) skips t, or fails it with CUTOVER_REQUIRE_AWS_TOOLS=1.
func RequireAWSCLI(t testing.TB) string {
	t.Helper()
	bin := RequireTool(t, "aws", "awscli")
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil {
		missing(t, RequireAWSToolsEnv, fmt.Sprintf("%s --version fails (%v): install awscli into a virtualenv of its own (python3 -m venv DIR && DIR/bin/pip install awscli) and put DIR/bin first on PATH\n%.600s", bin, err, out))
	}
	return bin
}

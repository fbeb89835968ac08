package e2e

// scripts/setup.sh, the set-up of `make test`, `make demo` and CI, run for
// real: as root on this machine (where everything is installed, so it
// installs and starts nothing) and as an unprivileged user.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/testenv"
)

func setupScript(t *testing.T) string {
	t.Helper()
	return filepath.Join(testenv.ModuleRoot(t), "scripts", "setup.sh")
}

// setupEnv is this process's environment without the marker of a nested
// call, so the script runs its checks.
func setupEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CUTOVER_SETUP_DONE=") && !strings.HasPrefix(kv, "CUTOVER_REQUIRE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// TestSetupRequiresEveryDependencyAndKeepsTheExitCode: with everything in
// place the command runs with every dependency required, and its exit code
// is the script's.
func TestSetupRequiresEveryDependencyAndKeepsTheExitCode(t *testing.T) {
	testenv.RequireDocker(t)
	if os.Geteuid() != 0 {
		t.Skip("the script installs as root; this run is not root")
	}
	cmd := exec.Command(setupScript(t), "sh", "-c", `echo "$CUTOVER_REQUIRE_DOCKER $CUTOVER_REQUIRE_AWS_TOOLS $CUTOVER_REQUIRE_TOOLS $CUTOVER_SETUP_DONE"; exit 3`)
	cmd.Env = setupEnv()
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("exit %v, want 3 (the command's)\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "1 1 1 1" {
		t.Fatalf("the command saw %q, want every CUTOVER_REQUIRE_* and CUTOVER_SETUP_DONE set to 1", got)
	}
}

// TestSetupAsAnotherUserSaysWhatToRun: an unprivileged user without the
// PyPI tools is told the exact commands to run, and the command does not run.
func TestSetupAsAnotherUserSaysWhatToRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching to another user needs root")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed to run as another user: %v", err)
	}
	// The user must reach the script and its home: a world-readable copy
	// outside t.TempDir (whose parent is private to root).
	home, err := os.MkdirTemp("", "cutover-setup-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	if err := os.Chmod(home, 0o777); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(setupScript(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "setup.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(home, "ran")
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", filepath.Join(home, "setup.sh"), "touch", marker)
	cmd.Dir = home
	// A PATH with Go, git and the system tools, but not the PyPI tools.
	cmd.Env = setupEnv("HOME="+home, "PATH="+filepath.Dir(gobin)+":/usr/bin:/bin:/usr/sbin:/sbin", "CUTOVER_TOOLS="+filepath.Join(home, "tools"))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1\n%s", err, out)
	}
	want := "python3 -m venv " + filepath.Join(home, "tools") + " && " + filepath.Join(home, "tools", "bin", "pip") + " install 'moto[server]' cfn-lint checkov"
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "then run this command again") {
		t.Fatalf("output does not say what to run (%s):\n%s", want, out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran although a dependency is missing")
	}
}

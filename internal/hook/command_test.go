package hook

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/proc"
)

func shHook(script string, timeout time.Duration) config.Hook {
	return config.Hook{Command: []string{"sh", "-c", script}, Timeout: config.Duration(timeout)}
}

func TestCommand(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "smoke.sh"), []byte("#!/bin/sh\necho smoke in $(pwd)\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := Env{Dir: dir, TestURL: "http://127.0.0.1:8081", Vars: map[string]string{"CUTOVER_REVISION": "r42"}}
	cases := []struct {
		name   string
		hook   config.Hook
		ok     bool
		detail string
	}{
		{
			name:   "pass with environment",
			hook:   shHook(`echo rev=$CUTOVER_REVISION url=$CUTOVER_TEST_URL`, 5*time.Second),
			ok:     true,
			detail: "exit code 0; last output: rev=r42 url=http://127.0.0.1:8081",
		},
		{
			name:   "script relative to the project dir",
			hook:   config.Hook{Command: []string{"./smoke.sh"}},
			ok:     true,
			detail: "exit code 0; last output: smoke in " + dir,
		},
		{
			name:   "exit 1 with output",
			hook:   shHook(`for i in $(seq 1 15); do echo line $i; done; echo oops >&2; exit 1`, 5*time.Second),
			detail: "exit code 1; last output: line 7 | line 8 | line 9 | line 10 | line 11 | line 12 | line 13 | line 14 | line 15 | oops",
		},
		{
			name:   "no output",
			hook:   shHook(`exit 3`, 5*time.Second),
			detail: "exit code 3; no output",
		},
		{
			name:   "long output is cut to 1KB",
			hook:   shHook(`head -c 5000 /dev/zero | tr '\0' 'a'; echo; echo end`, 5*time.Second),
			ok:     true,
			detail: "exit code 0; last output: …" + strings.Repeat("a", 1024-len(" | end")) + " | end",
		},
		{
			name:   "missing script",
			hook:   config.Hook{Command: []string{"./missing.sh"}},
			detail: "cannot start ./missing.sh in " + dir + ": no such file or directory (check the path and that the file is executable)",
		},
		{
			name:   "command not in PATH",
			hook:   config.Hook{Command: []string{"cutover-no-such-command"}},
			detail: "cannot start cutover-no-such-command: not found in $PATH (write a path such as ./cutover-no-such-command for a file in the project)",
		},
		{
			name:   "timeout",
			hook:   shHook(`echo waiting; sleep 30`, 300*time.Millisecond),
			detail: "timed out after 300ms; last output: waiting",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Run(context.Background(), config.EventBeforeInstall, tc.hook, env)
			if r.OK != tc.ok || r.Detail != tc.detail {
				t.Errorf("Run() = ok %v, detail\n  %s\nwant ok %v, detail\n  %s", r.OK, r.Detail, tc.ok, tc.detail)
			}
		})
	}
}

func TestCommandName(t *testing.T) {
	if got := Name(config.Hook{Command: []string{"./smoke.sh", "--fast"}}); got != "command ./smoke.sh --fast" {
		t.Errorf("Name() = %q", got)
	}
}

func TestCommandTimeoutKillsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	start := time.Now()
	r := Run(context.Background(), "test", shHook(`sleep 30 & echo $! > `+pidFile+`; wait`, 500*time.Millisecond), Env{})
	if r.OK || !strings.HasPrefix(r.Detail, "timed out after 500ms") {
		t.Fatalf("Run() = ok %v, %q; want a timeout", r.OK, r.Detail)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Run() took %s after a 500ms timeout", took)
	}
	waitGone(t, pidFile)
}

func TestCommandLeftoverChildrenAreKilled(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	// The script exits at once; its background child keeps the output pipe open.
	r := Run(context.Background(), "test", shHook(`sleep 30 & echo $! > `+pidFile+`; echo bye`, 10*time.Second), Env{})
	if !r.OK || r.Detail != "exit code 0; last output: bye" {
		t.Fatalf("Run() = ok %v, %q; want success", r.OK, r.Detail)
	}
	waitGone(t, pidFile)
}

// waitGone fails t unless the process whose pid is in pidFile is gone (or a zombie
// waiting for its new parent to reap it) within a few seconds.
func waitGone(t *testing.T, pidFile string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the script did not write the child's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if !proc.Alive(pid) { // gone, or a zombie waiting for its reaper
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL) // leave nothing running
			t.Fatalf("child %d (sleep 30) still running after the hook ended", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCommandCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	r := Run(ctx, "test", shHook(`sleep 30`, 10*time.Second), Env{})
	if r.OK || r.Detail != "was canceled: the deployment stopped; no output" {
		t.Errorf("Run() = ok %v, %q; want canceled", r.OK, r.Detail)
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	env := Env{Vars: map[string]string{"API_TOKEN": "tok-123456", "DB_PASSWORD": "hunter2-very-secret", "CUTOVER_REVISION": "r42"}}
	r := Run(context.Background(), "test", shHook(`echo $DB_PASSWORD $API_TOKEN $CUTOVER_REVISION; exit 1`, 5*time.Second), env)
	if want := "exit code 1; last output: [redacted] [redacted] r42"; r.Detail != want {
		t.Errorf("Detail = %q, want %q", r.Detail, want)
	}
}

// Attack: a hook command (cutover.yaml's, run on the host by whoever runs
// the deployment: the daemon, or a CI job holding cloud credentials) read
// cutover's whole environment. It sees only the allow-listed host variables
// (proc.HostEnv, plus HOME and USER) and the deployment's own.
func TestHookSeesNoneOfCutoversSecrets(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-from-the-ci-job")
	t.Setenv("CUTOVER_TOKEN", "cut_admin_token_value")
	t.Setenv("GITHUB_TOKEN", "ghp_should_not_leak")
	t.Setenv("LANG", "C.UTF-8")
	env := Env{Dir: t.TempDir(), Vars: map[string]string{"CUTOVER_REVISION": "r42"}}
	r := Run(context.Background(), "test", shHook(`env | sort | tr '\n' ' '; exit 1`, 5*time.Second), env)
	for _, leak := range []string{"aws-secret-from-the-ci-job", "AWS_SECRET_ACCESS_KEY", "cut_admin_token_value", "CUTOVER_TOKEN", "ghp_should_not_leak", "GITHUB_TOKEN", "redacted"} {
		if strings.Contains(r.Detail, leak) {
			t.Errorf("the hook saw %s: %s", leak, r.Detail)
		}
	}
	for _, want := range []string{"PATH=", "LANG=C.UTF-8", "CUTOVER_REVISION=r42"} {
		if !strings.Contains(r.Detail, want) {
			t.Errorf("the hook's environment lacks %s: %s", want, r.Detail)
		}
	}
	// A variable the hook names (pass_env) reaches it, and only that one.
	t.Setenv("CHECK_DB_HOST", "db.internal")
	h := shHook(`test "$CHECK_DB_HOST" = db.internal || echo NOT-PASSED; env | sort | tr '\n' ' '; exit 1`, 5*time.Second)
	h.PassEnv = []string{"CHECK_DB_HOST"}
	r = Run(context.Background(), "test", h, env)
	// (Its value is redacted in the Detail: TestPassedVariablesAreRedacted.)
	if !strings.Contains(r.Detail, "CHECK_DB_HOST=[redacted]") || strings.Contains(r.Detail, "NOT-PASSED") || strings.Contains(r.Detail, "AWS_SECRET_ACCESS_KEY") {
		t.Errorf("pass_env: %s", r.Detail)
	}
}

// Attack: pass_env is documented for a DATABASE_URL, whose password a
// failing check prints (psql's own error does): the value of a variable a
// hook names in pass_env never reaches the stored Detail, whatever its name.
func TestPassedVariablesAreRedacted(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://app:s3cr3t-db-pass@db.internal:5432/shop")
	t.Setenv("CHECK_REGION", "eu-west-1")
	h := shHook(`echo "cannot connect to $DATABASE_URL in $CHECK_REGION"; exit 2`, 5*time.Second)
	h.PassEnv = []string{"DATABASE_URL"}
	r := Run(context.Background(), "test", h, Env{Dir: t.TempDir()})
	if strings.Contains(r.Detail, "s3cr3t-db-pass") || !strings.Contains(r.Detail, "cannot connect to [redacted] in") {
		t.Errorf("Detail = %q: the passed DATABASE_URL must be redacted", r.Detail)
	}
	// A host variable the hook did not name is not in its environment: nothing to redact.
	if strings.Contains(r.Detail, "eu-west-1") {
		t.Errorf("Detail = %q: CHECK_REGION was not passed", r.Detail)
	}
}

// Attack: output cut to its last kilobyte right inside a secret left the
// secret's end in the Detail (the cut piece no longer matched the whole
// value). The kept output is masked before it is cut.
func TestSecretSplitByTheCutIsRedacted(t *testing.T) {
	secret := "tok-" + strings.Repeat("Zq9", 30) // 94 bytes
	env := Env{Vars: map[string]string{"API_TOKEN": secret}}
	// The secret, then exactly enough bytes that the 1 KiB cut falls in its middle.
	script := `printf '%s' "$API_TOKEN"; head -c 980 /dev/zero | tr '\0' 'x'; echo; exit 1`
	r := Run(context.Background(), "test", shHook(script, 5*time.Second), env)
	if strings.Contains(r.Detail, "Zq9Zq9") || !strings.Contains(r.Detail, "[redacted]") {
		t.Errorf("Detail = %q: a piece of the secret shows", r.Detail)
	}
}

func TestRunAllStopsAtFirstFailure(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "third-ran")
	hooks := []config.Hook{
		shHook(`true`, 5*time.Second),
		{Name: "migrations check", Command: []string{"sh", "-c", "echo pending migration 42; exit 2"}},
		shHook(`touch `+marker, 5*time.Second),
	}
	results, err := RunAll(context.Background(), config.EventAfterInstall, hooks, Env{})
	want := `AfterInstall hook 2 "migrations check" failed: exit code 2; last output: pending migration 42`
	if err == nil || err.Error() != want {
		t.Fatalf("RunAll() error = %v, want %s", err, want)
	}
	if len(results) != 2 || !results[0].OK || results[1].OK {
		t.Errorf("RunAll() results = %+v, want the first ok and the second failed", results)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the hook after the failure ran")
	}

	results, err = RunAll(context.Background(), config.EventAfterInstall, hooks[:1], Env{})
	if err != nil || len(results) != 1 {
		t.Errorf("RunAll() = %v, %v; want one result and no error", results, err)
	}
}

func TestHookWithoutCheck(t *testing.T) {
	r := Run(context.Background(), "test", config.Hook{Name: "empty"}, Env{})
	if r.OK || r.Detail != "the hook must have exactly one of http or command" {
		t.Errorf("Run() = %+v", r)
	}
}

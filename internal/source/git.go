package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// CommandTimeout bounds each git command (a fetch of a large repository over
// a slow link is the longest), so that a hung server or a host that drops
// packets cannot hold an execution forever. The caller's context may end it sooner.
var CommandTimeout = 10 * time.Minute

// ErrGitMissing is wrapped when the git executable is not on PATH.
var ErrGitMissing = errors.New("git is not installed")

// gitError is a failed git command. Its text is the command's last error
// line, redacted, so that it reads well inside the errors built from it.
type gitError struct {
	args   []string
	stderr string
	code   int
	err    error
}

func (e *gitError) Error() string {
	msg := lastLine(e.stderr)
	if msg == "" {
		msg = e.err.Error()
	}
	return redact(fmt.Sprintf("git %s: %s", e.args[0], msg))
}

func (e *gitError) Unwrap() error { return e.err }

// git runs git with args in dir ("" for the current directory) and returns
// its standard output. It never prompts: a repository that needs credentials
// the environment does not provide fails at once instead of hanging.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, CommandTimeout,
		fmt.Errorf("no answer within %v (source.CommandTimeout)", CommandTimeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	// git runs helpers (upload-pack, remote-https, ssh) as children: put them
	// in their own group and end the whole group on cancel, not only git.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	if errors.Is(err, exec.ErrNotFound) {
		return "", fmt.Errorf("source: %w (not found in PATH); install git and retry", ErrGitMissing)
	}
	if ctx.Err() != nil {
		return "", &gitError{args: args, err: context.Cause(ctx), code: -1}
	}
	code := -1
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	}
	return "", &gitError{args: args, stderr: stderr.String(), code: code, err: err}
}

func gitEnv() []string {
	env := append(os.Environ(),
		"GIT_TERMINAL_PROMPT=0",
		// Parsed messages ("not our ref") must not be translated.
		"LC_ALL=C",
	)
	if os.Getenv("GIT_SSH_COMMAND") == "" && os.Getenv("GIT_SSH") == "" {
		// Without BatchMode ssh asks for a passphrase or host key on the terminal.
		env = append(env, "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	}
	return env
}

// lastLine returns the last non-empty line of git's stderr without its
// "fatal: " or "error: " prefix; git puts the most specific message last,
// except for the generic advice about access rights, which is skipped.
func lastLine(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		switch {
		case l == "", strings.HasPrefix(l, "Please make sure you have the correct access rights"),
			l == "and the repository exists.", l == "fatal: Could not read from remote repository.":
			continue
		}
		for _, p := range []string{"fatal: ", "error: ", "remote: "} {
			l = strings.TrimPrefix(l, p)
		}
		return l
	}
	return ""
}

// userinfo matches the credentials of a URL: scheme://user:password@host,
// up to the last '@' before the path (a password may hold an unencoded '@').
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s]+@`)

// redact hides credentials embedded in URLs (https://TOKEN@host/...) in s,
// which may be a repository address or a message that quotes one.
func redact(s string) string { return userinfo.ReplaceAllString(s, "${1}***@") }

// Redact is redact for other packages: a repository address as it may be
// stored or shown (an execution records its trigger's repository).
func Redact(s string) string { return redact(s) }

// Redacted reports whether repo is an address whose credentials Redact
// took out: git cannot use it as it is.
func Redacted(repo string) bool { return strings.Contains(repo, "://***@") }

// isHex reports whether s is a non-empty string of lower-case hex digits.
func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// isFullSHA reports whether s is a complete object name (SHA-1 or SHA-256).
func isFullSHA(s string) bool { return (len(s) == 40 || len(s) == 64) && isHex(s) }

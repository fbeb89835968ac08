// Package testenv decides, for tests that need a real dependency such as the
// Docker engine, whether to run, skip, or fail.
//
// Under plain `go test` a missing dependency skips the test so it works
// anywhere; `make test` (scripts/setup.sh, also used by CI) installs the
// dependencies and sets CUTOVER_REQUIRE_DOCKER=1, CUTOVER_REQUIRE_AWS_TOOLS=1
// and CUTOVER_REQUIRE_TOOLS=1, so the same absence fails loudly instead of
// silently passing.
package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RequireDockerEnv is the variable that turns a missing engine from a skip into a failure.
const RequireDockerEnv = "CUTOVER_REQUIRE_DOCKER"

// RequireDocker skips t (or fails it when CUTOVER_REQUIRE_DOCKER=1) unless a
// Docker engine answers /_ping on DOCKER_HOST or the default unix socket.
func RequireDocker(t testing.TB) {
	t.Helper()
	if err := pingDocker(); err != nil {
		missing(t, RequireDockerEnv, "Docker engine not reachable: "+err.Error())
	}
}

func missing(t testing.TB, env, why string) {
	t.Helper()
	if os.Getenv(env) == "1" {
		t.Fatalf("%s (and %s=1, so this is a failure, not a skip)", why, env)
	}
	t.Skip(why)
}

// dockerHost is the engine's address as the Docker client names it.
func dockerHost() string {
	if host := os.Getenv("DOCKER_HOST"); host != "" {
		return host
	}
	return "unix:///var/run/docker.sock"
}

func pingDocker() error {
	host := dockerHost()
	network, addr := "tcp", strings.TrimPrefix(host, "tcp://")
	if strings.HasPrefix(host, "unix://") {
		network, addr = "unix", strings.TrimPrefix(host, "unix://")
	}
	client := &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}},
	}
	resp, err := client.Get("http://docker/_ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{resp.Status}
	}
	return nil
}

type statusError struct{ status string }

func (e *statusError) Error() string { return "ping answered " + e.status }

// RequireToolsEnv turns a missing system tool (nginx, busybox, git) from a
// skip into a failure; scripts/setup.sh sets it for `make test`.
const RequireToolsEnv = "CUTOVER_REQUIRE_TOOLS"

// RequireFile skips t when the tool at path is missing (or fails it when
// CUTOVER_REQUIRE_TOOLS=1), naming the Debian package that installs it.
func RequireFile(t testing.TB, path, debianPackage string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, RequireToolsEnv, fmt.Sprintf("%s is missing (install it with: apt-get install %s)", path, debianPackage))
	}
}

// RequireCommand returns the path of a test tool on PATH (schemathesis in
// scripts/setup.sh's virtualenv): it skips t when the tool is missing, or
// fails it when CUTOVER_REQUIRE_TOOLS=1, saying how to install it.
func RequireCommand(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, RequireToolsEnv, fmt.Sprintf("%s is not on PATH (install it with: %s, or run `make test`, which does)", name, install))
	}
	return p
}

package integration_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/cutoverdev/cutover/internal/integration"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
)

// testsWorkspace writes a repository with a compose file whose `tests`
// service is built from tests/ (a FROM scratch image with Debian's static
// busybox) and runs script against the backend.
func testsWorkspace(t *testing.T, backendImage, script string) (root, file string) {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed for this test (apt-get install busybox-static): %v", err)
	}
	root = t.TempDir()
	dir := filepath.Join(root, "tests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nENTRYPOINT [\"/bin/sh\", \"-c\"]\n"), 0o644))
	compose := fmt.Sprintf(`services:
  backend:
    image: %s
    healthcheck:
      test: ["CMD", "/backend", "-healthcheck"]
      interval: 1s
      retries: 20
  tests:
    build: { context: tests }
    command: [%q]
    depends_on:
      backend: { condition: service_healthy }
`, backendImage, script)
	file = filepath.Join(root, "docker-compose.integration.yml")
	must(t, os.WriteFile(file, []byte(compose), 0o644))
	return root, file
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// imagesLeft counts the images an integration project built that remain.
func imagesLeft(t *testing.T, rt *docker.Runtime, project string) int {
	t.Helper()
	is, err := rt.EngineClient().ImageList(context.Background(), client.ImageListOptions{Filters: make(client.Filters).Add("label", integration.Label+"="+project)})
	if err != nil {
		t.Fatal(err)
	}
	return len(is.Items)
}

// The seed's `docker compose up --exit-code-from tests`: the test service's
// exit code decides the run, and it reaches the other services by name.
func TestExitCodeFromPassesAndFails(t *testing.T) {
	rt, images := bluemed(t)
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script string
		code   int
	}{
		{"pass", "wget -q -O- http://backend:3001/api/health && echo suite ok", 0},
		{"fail", "echo 'FAIL: orders total is wrong'; exit 3", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proj := project(t)
			safetyNet(t, rt, proj)
			root, file := testsWorkspace(t, images["backend"], tc.script)
			res, err := integration.Run(context.Background(), rt, integration.Options{
				ComposeFile: file, Project: proj, Images: map[string]string{"backend": images["backend"]},
				ExitCodeFrom: "tests", Root: root, Timeout: 2 * time.Minute,
			})
			t.Logf("error: %v", err)
			got := res.Services["tests"]
			if !got.Exited || got.ExitCode != tc.code {
				t.Errorf("tests service result %+v, want exited with code %d", got, tc.code)
			}
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("Run: %v, want success", err)
				}
				if !strings.Contains(strings.Join(got.LastLogs, "\n"), "suite ok") {
					t.Errorf("logs %q lack the suite's output", got.LastLogs)
				}
			} else {
				if !errors.Is(err, integration.ErrTestsFailed) {
					t.Fatalf("Run: %v, want ErrTestsFailed", err)
				}
				for _, want := range []string{"test service tests exited with code 3", "orders total is wrong"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error lacks %q", want)
					}
				}
			}
			assertNothingLeft(t, rt, proj)
			if n := imagesLeft(t, rt, proj); n != 0 {
				t.Errorf("%d built test images left behind", n)
			}
		})
	}
}

// A repository cannot make the integration step read host files through a
// build context that leaves the workspace, by path or by symlink; nothing is
// built or started.
func TestExitCodeFromBuildContextConfinedToWorkspace(t *testing.T) {
	rt, images := bluemed(t)
	t.Parallel()
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "Dockerfile"), []byte("FROM scratch\nCOPY . /loot\n"), 0o644))
	for _, tc := range []struct{ name, context string }{
		{"dotdot", "../" + filepath.Base(outside)},
		{"absolute", outside},
		{"symlink", "link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proj := project(t)
			safetyNet(t, rt, proj)
			root := filepath.Join(filepath.Dir(outside), "ws-"+tc.name+"-"+proj)
			must(t, os.MkdirAll(root, 0o755))
			t.Cleanup(func() { os.RemoveAll(root) })
			must(t, os.Symlink(outside, filepath.Join(root, "link")))
			file := filepath.Join(root, "docker-compose.yml")
			must(t, os.WriteFile(file, []byte(fmt.Sprintf("services:\n  tests:\n    build: { context: %q }\n", tc.context)), 0o644))
			_, err := integration.Run(context.Background(), rt, integration.Options{
				ComposeFile: file, Project: proj, ExitCodeFrom: "tests", Root: root, Images: map[string]string{"unused": images["backend"]},
			})
			t.Logf("error: %v", err)
			if err == nil || !strings.Contains(err.Error(), "outside the workspace") || !strings.Contains(err.Error(), "service tests") {
				t.Fatalf("Run: %v, want a refusal naming the service and the workspace", err)
			}
			assertNothingLeft(t, rt, proj)
			if n := imagesLeft(t, rt, proj); n != 0 {
				t.Errorf("%d images built from outside the workspace", n)
			}
		})
	}
}

func TestExitCodeFromUnknownServiceIsRefused(t *testing.T) {
	rt, images := bluemed(t)
	t.Parallel()
	proj := project(t)
	file := writeCompose(t, fmt.Sprintf("services:\n  api:\n    image: %s\n", images["backend"]))
	_, err := integration.Run(context.Background(), rt, integration.Options{ComposeFile: file, Project: proj, ExitCodeFrom: "tests"})
	if err == nil || !strings.Contains(err.Error(), `exit_code_from names service "tests"`) || !strings.Contains(err.Error(), "services: api") {
		t.Fatalf("Run: %v, want a refusal naming the service and the ones there are", err)
	}
	assertNothingLeft(t, rt, proj)
}

// A pull request's workspace may turn a bind-mounted directory of the
// (trusted) compose file into a link to /etc or the Docker socket: for an
// untrusted run such a mount is refused, and nothing starts.
func TestUntrustedBindMountsStayInTheWorkspace(t *testing.T) {
	rt, images := bluemed(t)
	t.Parallel()
	proj := project(t)
	safetyNet(t, rt, proj)
	root := t.TempDir()
	must(t, os.Symlink("/etc", filepath.Join(root, "cfg")))
	file := filepath.Join(root, "docker-compose.yml")
	must(t, os.WriteFile(file, []byte(fmt.Sprintf("services:\n  api:\n    image: %s\n    volumes: [\"./cfg:/cfg:ro\"]\n", images["backend"])), 0o644))
	_, err := integration.Run(context.Background(), rt, integration.Options{ComposeFile: file, Project: proj, Root: root, Untrusted: true})
	if err == nil || !strings.Contains(err.Error(), "bind mount") || !strings.Contains(err.Error(), "outside the workspace") {
		t.Fatalf("Run: %v, want the bind mount refused", err)
	}
	assertNothingLeft(t, rt, proj)
}

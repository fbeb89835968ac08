package integration_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/cutoverdev/cutover/internal/integration"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/testenv"
)

const bluemedCompose = "../../examples/bluemed/docker-compose.yml"

// fixture holds the example's images, built once for the whole package and
// removed by TestMain.
var fixture struct {
	once   sync.Once
	rt     *docker.Runtime
	images map[string]string // service → image ID
	dirs   []string
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixture.rt != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for _, id := range fixture.images {
			if _, err := fixture.rt.RemoveImage(ctx, id); err != nil {
				fmt.Fprintln(os.Stderr, "removing test image:", err)
			}
		}
		cancel()
		fixture.rt.Close()
	}
	for _, d := range fixture.dirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// bluemed returns a runtime and the example's images, building the static
// binaries into temporary contexts (never into the source tree) the first time.
func bluemed(t *testing.T) (*docker.Runtime, map[string]string) {
	t.Helper()
	testenv.RequireDocker(t)
	fixture.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		fixture.rt, fixture.err = docker.Connect(ctx)
		if fixture.err != nil {
			return
		}
		fixture.images = map[string]string{}
		tag := strconv.FormatInt(time.Now().UnixNano(), 36)
		for _, svc := range []string{"backend", "frontend"} {
			id, err := buildImage(ctx, svc, tag)
			if err != nil {
				fixture.err = err
				return
			}
			fixture.images[svc] = id
		}
	})
	if fixture.err != nil {
		t.Fatal(fixture.err)
	}
	return fixture.rt, fixture.images
}

func buildImage(ctx context.Context, svc, tag string) (string, error) {
	dir, err := os.MkdirTemp("", "cutover-it-"+svc+"-")
	if err != nil {
		return "", err
	}
	fixture.dirs = append(fixture.dirs, dir)
	src := filepath.Join("..", "..", "examples", "bluemed", svc)
	dockerfile, err := os.ReadFile(filepath.Join(src, "Dockerfile"))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), dockerfile, 0o644); err != nil {
		return "", err
	}
	out, err := filepath.Abs(filepath.Join(dir, "bin", svc))
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", svc, err, b)
	}
	img, err := fixture.rt.Build(ctx, docker.BuildRequest{ContextDir: dir, Tags: []string{"cutover-integration-test/" + svc + ":" + tag}})
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

func project(t *testing.T) string {
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	return "cutover-it-" + name + "-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
}

// assertNothingLeft fails t when any engine object of the project remains.
func assertNothingLeft(t *testing.T, rt *docker.Runtime, project string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	engine := rt.EngineClient()
	f := make(client.Filters).Add("label", integration.Label+"="+project)
	cs, err := engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := engine.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := engine.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Items)+len(ns.Items)+len(vs.Items) > 0 {
		t.Errorf("project %s left %d containers, %d networks, %d volumes behind", project, len(cs.Items), len(ns.Items), len(vs.Items))
	}
}

// safetyNet removes the project's objects if a test fails before Run could.
func safetyNet(t *testing.T, rt *docker.Runtime, project string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		integration.Teardown(ctx, rt, project)
	})
}

var bluemedChecks = []integration.Check{
	{Service: "backend", ContainerPort: 3001, Path: "/api/health", ExpectStatus: 200},
	{Service: "frontend", ContainerPort: 3000, Path: "/", ExpectStatus: 200, ExpectBody: "<title>bluemed"},
	{Service: "frontend", ContainerPort: 3000, Path: "/some/unknown/path", ExpectStatus: 200, ExpectBody: "<title>bluemed"},
}

func TestRunBluemedPasses(t *testing.T) {
	rt, images := bluemed(t)
	t.Parallel()
	proj := project(t)
	safetyNet(t, rt, proj)
	var out bytes.Buffer
	res, err := integration.Run(context.Background(), rt, integration.Options{
		ComposeFile: bluemedCompose, Project: proj, Images: images,
		Checks: bluemedChecks, Timeout: 3 * time.Minute, Output: &out,
	})
	t.Logf("progress:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(res.Checks) != len(bluemedChecks) {
		t.Fatalf("%d check results, want %d", len(res.Checks), len(bluemedChecks))
	}
	for _, c := range res.Checks {
		if !c.OK {
			t.Errorf("check %s %s failed: %s", c.Service, c.Path, c.Detail)
		}
	}
	for _, svc := range []string{"backend", "frontend"} {
		s := res.Services[svc]
		if !s.Healthy {
			t.Errorf("service %s not healthy", svc)
		}
		if len(s.LastLogs) == 0 {
			t.Errorf("service %s: no last logs collected", svc)
		}
	}
	if p := res.Services["backend"].HostPorts[3001]; p == 0 {
		t.Errorf("backend host ports %v, want 3001 published", res.Services["backend"].HostPorts)
	}
	if !strings.Contains(out.String(), "torn down: removed 2 containers, 1 network, 0 volumes") {
		t.Errorf("progress does not report the teardown of 2 containers and 1 network")
	}
	assertNothingLeft(t, rt, proj)
}

func TestRunFailingCheckSaysWhich(t *testing.T) {
	rt, images := bluemed(t)
	t.Parallel()
	proj := project(t)
	safetyNet(t, rt, proj)
	checks := []integration.Check{
		{Service: "backend", ContainerPort: 3001, Path: "/api/health"},
		{Service: "backend", ContainerPort: 3001, Path: "/api/does-not-exist", ExpectStatus: 200},
	}
	res, err := integration.Run(context.Background(), rt, integration.Options{
		ComposeFile: bluemedCompose, Project: proj, Images: images, Checks: checks, Timeout: 3 * time.Minute,
	})
	if !errors.Is(err, integration.ErrChecksFailed) {
		t.Fatalf("Run: %v, want ErrChecksFailed", err)
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "/api/does-not-exist") || !strings.Contains(err.Error(), "status 404, want 200") {
		t.Errorf("error does not name the failing check and its status: %v", err)
	}
	if len(res.Checks) != 2 || !res.Checks[0].OK || res.Checks[1].OK {
		t.Fatalf("check results %+v, want the first ok and the second failed", res.Checks)
	}
	if !strings.Contains(res.Checks[1].Detail, "status 404") {
		t.Errorf("detail %q does not give the status", res.Checks[1].Detail)
	}
	assertNothingLeft(t, rt, proj)
}

// cancelOn cancels when a progress line contains a marker.
type cancelOn struct {
	marker string
	cancel context.CancelFunc
	mu     sync.Mutex
	buf    bytes.Buffer
}

func (w *cancelOn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.marker) {
		w.cancel()
	}
	return len(p), nil
}

func TestRunCancelledWhileWaitingTearsDown(t *testing.T) {
	rt, images := bluemed(t)
	t.Parallel()
	proj := project(t)
	safetyNet(t, rt, proj)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The backend's first healthcheck runs 5s after it starts: cancel in between.
	out := &cancelOn{marker: "service backend started", cancel: cancel}
	res, err := integration.Run(ctx, rt, integration.Options{
		ComposeFile: bluemedCompose, Project: proj, Images: images, Checks: bluemedChecks, Output: out,
	})
	t.Logf("error: %v", err)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "waiting for service backend") {
		t.Errorf("error does not say what was interrupted: %v", err)
	}
	if len(res.Checks) != 0 {
		t.Errorf("checks ran after cancellation: %+v", res.Checks)
	}
	if _, started := res.Services["frontend"]; started {
		t.Errorf("frontend started although backend never became healthy")
	}
	assertNothingLeft(t, rt, proj)
}

// TestRunImageVolumeAndNetworks covers what bluemed does not use: a service
// given by image: (no build), a named volume and a declared network.
func TestRunImageVolumeAndNetworks(t *testing.T) {
	rt, images := bluemed(t)
	t.Parallel()
	proj := project(t)
	safetyNet(t, rt, proj)
	dir := t.TempDir()
	compose := fmt.Sprintf(`services:
  api:
    image: %s
    ports: ["3001:3001"]
    volumes: [data:/data]
    networks: [back]
volumes:
  data: {}
networks:
  back: {}
`, images["backend"])
	file := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(file, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := integration.Run(context.Background(), rt, integration.Options{
		ComposeFile: file, Project: proj, Output: &out, Timeout: 2 * time.Minute,
		Checks: []integration.Check{{Service: "api", ContainerPort: 3001, Path: "/api/health", ExpectBody: "ok"}},
	})
	t.Logf("progress:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !res.Checks[0].OK {
		t.Errorf("check failed: %s", res.Checks[0].Detail)
	}
	for _, want := range []string{"network " + proj + "_back created", "volume " + proj + "_data created", "removed 1 container, 1 network, 1 volume"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("progress lacks %q", want)
		}
	}
	assertNothingLeft(t, rt, proj)
}

func TestRunRefusesMistakesBeforeStarting(t *testing.T) {
	rt, images := bluemed(t)
	t.Parallel()
	dir := t.TempDir()
	broken := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(broken, []byte("services:\n  web:\n    image: [oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    integration.Options
		want []string
	}{
		{"broken yaml", integration.Options{ComposeFile: broken}, []string{broken}},
		{"missing file", integration.Options{ComposeFile: filepath.Join(dir, "nope.yml")}, []string{"nope.yml", "cannot be read"}},
		{"build without image", integration.Options{ComposeFile: bluemedCompose},
			[]string{"docker-compose.yml", "service backend has a build section: build it first (the pipeline's build stage does)"}},
		{"unknown check service", integration.Options{ComposeFile: bluemedCompose, Images: images,
			Checks: []integration.Check{{Service: "db", ContainerPort: 5432}}}, []string{`service "db" is not in compose file`, "backend, frontend"}},
		{"bad project name", integration.Options{ComposeFile: bluemedCompose, Project: "Bad Name"}, []string{`project name "Bad Name" is invalid`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.o.Project == "" {
				tc.o.Project = project(t)
			}
			_, err := integration.Run(context.Background(), rt, tc.o)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			t.Logf("error: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n"); n > 1 {
				t.Errorf("error has %d lines: %q", n+1, err)
			}
			assertNothingLeft(t, rt, tc.o.Project)
		})
	}
}

func writeCompose(t *testing.T, text string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "docker-compose.yml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestRunServiceThatExitsNamesItAndItsLogs(t *testing.T) {
	rt, images := bluemed(t)
	t.Parallel()
	proj := project(t)
	safetyNet(t, rt, proj)
	file := writeCompose(t, fmt.Sprintf("services:\n  api:\n    image: %s\n    command: [\"-no-such-flag\"]\n", images["backend"]))
	res, err := integration.Run(context.Background(), rt, integration.Options{ComposeFile: file, Project: proj, Timeout: time.Minute})
	t.Logf("error: %v", err)
	if err == nil || errors.Is(err, integration.ErrChecksFailed) {
		t.Fatalf("Run: %v, want a start failure", err)
	}
	for _, want := range []string{file, "service api", "exited with code", "no-such-flag"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if res.Services["api"].Healthy || len(res.Services["api"].LastLogs) == 0 {
		t.Errorf("service result %+v, want not healthy, with its last logs", res.Services["api"])
	}
	assertNothingLeft(t, rt, proj)
}

func TestRunTimeoutTearsDown(t *testing.T) {
	rt, images := bluemed(t)
	t.Parallel()
	proj := project(t)
	safetyNet(t, rt, proj)
	// The backend's first healthcheck is 5s after start: a 1s run times out waiting for it.
	_, err := integration.Run(context.Background(), rt, integration.Options{
		ComposeFile: bluemedCompose, Project: proj, Images: images, Checks: bluemedChecks, Timeout: time.Second,
	})
	t.Logf("error: %v", err)
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s") {
		t.Fatalf("Run: %v, want a timeout", err)
	}
	assertNothingLeft(t, rt, proj)
}

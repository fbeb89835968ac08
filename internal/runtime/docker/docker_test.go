package docker

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/cutoverdev/cutover/internal/testenv"
	"github.com/moby/moby/client"
)

// The test server image is built once per test binary and removed in TestMain.
var (
	imageOnce  sync.Once
	imageErr   error
	testImage  Image
	imageDir   string
	imageBuild strings.Builder
)

func TestMain(m *testing.M) {
	code := m.Run()
	if testImage.ID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if rt, err := Connect(ctx); err == nil {
			rt.RemoveImage(ctx, testImage.ID)
			rt.Close()
		}
		cancel()
	}
	if imageDir != "" {
		os.RemoveAll(imageDir)
	}
	os.Exit(code)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newRuntime(t *testing.T) *Runtime {
	t.Helper()
	testenv.RequireDocker(t)
	rt, err := Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// testLabels returns a label set unique to t, and removes every task carrying
// it when t ends, passed or failed.
func testLabels(t *testing.T, rt *Runtime) Labels {
	l := Labels{Project: "t-" + randomHex(6), Environment: "test"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := rt.RemoveTasks(ctx, Labels{Project: l.Project}, 0); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return l
}

// serverImage builds testdata/server statically into a FROM scratch image.
func serverImage(t *testing.T, rt *Runtime) Image {
	t.Helper()
	imageOnce.Do(func() {
		imageDir, imageErr = os.MkdirTemp("", "cutover-docker-test-")
		if imageErr != nil {
			return
		}
		dir := filepath.Join(imageDir, "server")
		if imageErr = os.Mkdir(dir, 0o755); imageErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "server"), "./testdata/server")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("go build testdata/server: %v\n%s", err, out)
			return
		}
		files := map[string]string{
			"Dockerfile":    "FROM scratch\nCOPY server /server\nEXPOSE 8080\nENTRYPOINT [\"/server\"]\n",
			".dockerignore": "*.md\n",
			"README.md":     "not sent to the engine\n",
		}
		for name, content := range files {
			if imageErr = os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); imageErr != nil {
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		testImage, imageErr = rt.Build(ctx, BuildRequest{
			ContextDir: dir,
			Tags:       []string{"cutover-test/server:" + randomHex(6)},
			Labels:     map[string]string{"dev.cutover.test": "true"},
			Output:     &imageBuild,
		})
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return testImage
}

func TestBuildAndImageID(t *testing.T) {
	rt := newRuntime(t)
	t.Logf("engine %s, negotiated API version %s", rt.Host(), rt.client.ClientVersion())
	img := serverImage(t, rt)
	if !strings.HasPrefix(img.ID, "sha256:") || len(img.ID) != len("sha256:")+64 {
		t.Fatalf("image ID = %q, want sha256:<64 hex>", img.ID)
	}
	if out := imageBuild.String(); !strings.Contains(out, "Step 2/5 : COPY server /server") {
		t.Errorf("build output lacks the steps:\n%s", out)
	}
	for _, ref := range []string{img.Tags[0], img.ID} {
		id, err := rt.ImageID(t.Context(), ref)
		if err != nil || id != img.ID {
			t.Errorf("ImageID(%s) = %q, %v; want %s", ref, id, err, img.ID)
		}
	}
	_, err := rt.ImageID(t.Context(), "cutover-test/nope:missing")
	want := "image cutover-test/nope:missing not found locally (build it, or check the name)"
	if err == nil || err.Error() != want {
		t.Errorf("ImageID(unknown) error = %v, want %q", err, want)
	}
}

func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "backend")
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBuildErrors(t *testing.T) {
	rt := newRuntime(t)
	tag := "cutover-test/broken:" + randomHex(6)
	t.Cleanup(func() {
		rt.RemoveImage(context.Background(), tag)
	})

	t.Run("copy of a missing file", func(t *testing.T) {
		dir := writeContext(t, map[string]string{
			"Dockerfile": "FROM scratch\nCOPY bin/backend /backend\n",
		})
		_, err := rt.Build(t.Context(), BuildRequest{ContextDir: dir, Tags: []string{tag}})
		want := "build backend (backend/Dockerfile): step 2/2 COPY bin/backend /backend: "
		t.Log(err)
		if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "bin/backend") {
			t.Fatalf("error = %v\nwant it to start with %q", err, want)
		}
		if n := strings.Count(err.Error(), "\n"); n > 1 {
			t.Errorf("error has %d lines, want at most 2:\n%v", n+1, err)
		}
		var be *BuildError
		if !errors.As(err, &be) || be.Step != "step 2/2 COPY bin/backend /backend" {
			t.Errorf("error is not a *BuildError with the step: %#v", be)
		}
	})

	t.Run("dockerignore", func(t *testing.T) {
		// .dockerignore excludes secret.txt (so COPY fails) and the Dockerfile
		// itself, which is sent anyway because the builder needs it.
		dir := writeContext(t, map[string]string{
			"Dockerfile":    "FROM scratch\nCOPY secret.txt /secret.txt\n",
			".dockerignore": "Dockerfile\nsecret.txt\n",
			"secret.txt":    "do not send",
		})
		_, err := rt.Build(t.Context(), BuildRequest{ContextDir: dir, Tags: []string{tag}})
		if err == nil || !strings.Contains(err.Error(), "step 2/2 COPY secret.txt /secret.txt: ") {
			t.Fatalf("error = %v, want a COPY failure for the ignored file", err)
		}
	})

	t.Run("missing Dockerfile", func(t *testing.T) {
		dir := writeContext(t, map[string]string{"main.go": "package main\n"})
		_, err := rt.Build(t.Context(), BuildRequest{ContextDir: dir, Dockerfile: "Dockerfile.prod"})
		want := "build backend: Dockerfile backend/Dockerfile.prod not found"
		t.Log(err)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("error = %v, want it to start with %q", err, want)
		}
	})

	t.Run("Dockerfile outside the context", func(t *testing.T) {
		dir := writeContext(t, map[string]string{"Dockerfile": "FROM scratch\n"})
		_, err := rt.Build(t.Context(), BuildRequest{ContextDir: dir, Dockerfile: "../Dockerfile"})
		if err == nil || !strings.Contains(err.Error(), "is outside the build context") {
			t.Fatalf("error = %v, want an outside-the-context error", err)
		}
	})
}

// get fetches http://127.0.0.1:port/path, retrying until it answers 200 or
// the deadline passes.
func waitHTTP(t *testing.T, port int, path string) string {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		resp, err := hc.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body)
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: no 200 within 30s (last: %s)", url, last)
	return ""
}

// eventually polls cond every 100ms for up to 30s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestTaskLifecycle(t *testing.T) {
	rt := newRuntime(t)
	img := serverImage(t, rt)
	labels := testLabels(t, rt)
	labels.Service, labels.Revision, labels.Color = "api", "r1", "blue"
	ctx := t.Context()

	task, err := rt.StartTask(ctx, TaskSpec{
		Name:          "cutover-" + labels.Project + "-api-1",
		Image:         img.ID,
		Labels:        labels,
		Env:           map[string]string{"PORT": "8080", "EXTRA_PORT": "9090"},
		ContainerPort: 8080,
		StopTimeout:   5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if task.HostPort == 0 || !task.Running || task.State != "running" || task.Labels != labels || task.StartedAt.IsZero() {
		t.Fatalf("started task = %+v", task)
	}
	if body := waitHTTP(t, task.HostPort, "/healthz"); body != "ok\n" {
		t.Errorf("GET /healthz = %q", body)
	}

	tasks, err := rt.ListTasks(ctx, Labels{Project: labels.Project, Color: "blue"})
	if err != nil || len(tasks) != 1 || tasks[0].ID != task.ID || tasks[0].HostPort != task.HostPort {
		t.Fatalf("ListTasks = %+v, %v; want the one task", tasks, err)
	}
	if other, err := rt.ListTasks(ctx, Labels{Project: labels.Project, Color: "green"}); err != nil || len(other) != 0 {
		t.Errorf("ListTasks(green) = %+v, %v; want none", other, err)
	}

	var ports []int
	eventually(t, "ports 8080 and 9090 to listen", func() bool {
		ports, err = rt.ListeningPorts(ctx, task.ID)
		return err == nil && slices.Equal(ports, []int{8080, 9090})
	})

	lines, err := rt.LastLogLines(ctx, task.ID, 5)
	if err != nil || !slices.Contains(lines, "listening on :8080") {
		t.Errorf("LastLogLines = %q, %v", lines, err)
	}

	follow, err := rt.Logs(ctx, task.ID, true, 1, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := bufio.NewReader(follow).ReadString('\n')
	if err != nil || first != "listening on :8080\n" {
		t.Errorf("followed logs start with %q, %v", first, err)
	}
	if err := follow.Close(); err != nil {
		t.Errorf("closing followed logs: %v", err)
	}

	stopped := time.Now()
	if err := rt.StopTask(ctx, task.ID, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(stopped); d > 15*time.Second {
		t.Errorf("StopTask took %s: SIGTERM was not delivered or not handled", d)
	}
	task, err = rt.Inspect(ctx, task.ID)
	if err != nil || task.Running || task.State != "exited" || task.ExitCode != 0 || task.FinishedAt.IsZero() {
		t.Fatalf("after stop: %+v, %v", task, err)
	}
	if lines, err := rt.LastLogLines(ctx, task.ID, 2); err != nil || !slices.Equal(lines, []string{"got terminated - shutting down", "bye"}) {
		t.Errorf("last log lines after stop = %q, %v", lines, err)
	}
	rc, err := rt.Logs(ctx, task.ID, false, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(all) != "listening on :8080\ngot terminated - shutting down\nbye\n" {
		t.Errorf("Logs = %q, %v", all, err)
	}
	if _, err := rt.ListeningPorts(ctx, task.ID); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("ListeningPorts of a stopped task: %v", err)
	}

	if err := rt.StopTask(ctx, task.ID, time.Second); err != nil {
		t.Errorf("second StopTask: %v", err)
	}
	for range 2 {
		if err := rt.RemoveTask(ctx, task.ID); err != nil {
			t.Errorf("RemoveTask: %v", err)
		}
	}
	if err := rt.StopTask(ctx, task.ID, time.Second); err != nil {
		t.Errorf("StopTask of a removed task: %v", err)
	}
	_, err = rt.Inspect(ctx, task.ID)
	if !cerrdefs.IsNotFound(err) || !strings.Contains(err.Error(), "no such task") {
		t.Errorf("Inspect of a removed task: %v", err)
	}
	if tasks, err := rt.ListTasks(ctx, Labels{Project: labels.Project}); err != nil || len(tasks) != 0 {
		t.Errorf("ListTasks after removal = %+v, %v", tasks, err)
	}
}

func TestTaskExitsAtStart(t *testing.T) {
	rt := newRuntime(t)
	img := serverImage(t, rt)
	labels := testLabels(t, rt)
	ctx := t.Context()

	task, err := rt.StartTask(ctx, TaskSpec{
		Image:         img.ID,
		Labels:        labels,
		Env:           map[string]string{"FAIL_AT_START": "missing DATABASE_URL"},
		ContainerPort: 8080,
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the task to exit", func() bool {
		task, err = rt.Inspect(ctx, task.ID)
		return err == nil && !task.Running
	})
	if task.ExitCode != 3 || task.State != "exited" {
		t.Errorf("task = %+v, want exited with code 3", task)
	}
	lines, err := rt.LastLogLines(ctx, task.ID, 5)
	if err != nil || !slices.Equal(lines, []string{"missing DATABASE_URL"}) {
		t.Errorf("LastLogLines = %q, %v", lines, err)
	}
}

func TestStartTaskPortInUse(t *testing.T) {
	rt := newRuntime(t)
	img := serverImage(t, rt)
	labels := testLabels(t, rt)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	_, err = rt.StartTask(t.Context(), TaskSpec{Image: img.ID, Labels: labels, ContainerPort: 8080, HostPort: port})
	want := fmt.Sprintf("host port 127.0.0.1:%d is already in use", port)
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want it to say %q", err, want)
	}
	if tasks, err := rt.ListTasks(t.Context(), Labels{Project: labels.Project}); err != nil || len(tasks) != 0 {
		t.Errorf("a failed start left tasks behind: %+v, %v", tasks, err)
	}
}

func TestStartTaskUnknownImage(t *testing.T) {
	rt := newRuntime(t)
	labels := testLabels(t, rt)
	missing := "sha256:" + strings.Repeat("0", 64)
	_, err := rt.StartTask(t.Context(), TaskSpec{Image: missing, Labels: labels, ContainerPort: 8080})
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "image "+missing+" not found locally") {
		t.Fatalf("error = %v", err)
	}
}

func TestRemoveTasks(t *testing.T) {
	rt := newRuntime(t)
	img := serverImage(t, rt)
	labels := testLabels(t, rt)
	ctx := t.Context()

	for _, color := range []string{"blue", "green", "green"} {
		l := labels
		l.Color = color
		if _, err := rt.StartTask(ctx, TaskSpec{Image: img.ID, Labels: l, ContainerPort: 8080}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := rt.RemoveTasks(ctx, Labels{Project: labels.Project, Color: "green"}, 10*time.Second)
	if err != nil || n != 2 {
		t.Fatalf("RemoveTasks(green) = %d, %v; want 2", n, err)
	}
	tasks, err := rt.ListTasks(ctx, Labels{Project: labels.Project})
	if err != nil || len(tasks) != 1 || tasks[0].Labels.Color != "blue" {
		t.Fatalf("left = %+v, %v; want the blue task", tasks, err)
	}
	if n, err := rt.RemoveTasks(ctx, Labels{Project: labels.Project}, 0); err != nil || n != 1 {
		t.Errorf("RemoveTasks(all) = %d, %v; want 1", n, err)
	}
}

func TestConnectUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent.sock")
	_, err := Connect(t.Context())
	var ue *EngineUnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("error = %v (%T), want *EngineUnreachableError", err, err)
	}
	want := "cannot reach the Docker engine at unix:///nonexistent.sock: no such file or directory (start it: `sudo systemctl start docker`, or run `dockerd` in the background; set DOCKER_HOST if it listens elsewhere)"
	if err.Error() != want {
		t.Errorf("error =\n%s\nwant\n%s", err, want)
	}
}

// crashTask kills a task's process from the host, as a crash would end it
// (`docker kill` would count as a deliberate stop and never restart).
func crashTask(t *testing.T, rt *Runtime, id string) {
	t.Helper()
	res, err := rt.client.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
	if err != nil || res.Container.State == nil || res.Container.State.Pid <= 0 {
		t.Fatalf("no process to crash in %s: %v", id, err)
	}
	if err := syscall.Kill(res.Container.State.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill task process: %v (the test needs root, as the engine does)", err)
	}
}

// A task kept running comes back after a crash on the same host port, so
// the load balancer's target stays right; a stop is still a stop.
func TestKeepRunningRestartsOnTheSameHostPort(t *testing.T) {
	rt := newRuntime(t)
	img := serverImage(t, rt)
	labels := testLabels(t, rt)
	ctx := t.Context()

	task, err := rt.StartTask(ctx, TaskSpec{Image: img.ID, Labels: labels, ContainerPort: 8080, StopTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, task.HostPort, "/healthz")
	if err := rt.KeepRunning(ctx, task.ID); err != nil {
		t.Fatal(err)
	}
	crashTask(t, rt, task.ID)
	var after Task
	eventually(t, "the crashed task to be restarted", func() bool {
		after, err = rt.Inspect(ctx, task.ID)
		return err == nil && after.Running && after.RestartCount >= 1 && after.HostPort != 0
	})
	if after.HostPort != task.HostPort {
		t.Fatalf("restarted on host port %d, want %d as before the crash", after.HostPort, task.HostPort)
	}
	waitHTTP(t, task.HostPort, "/healthz")

	if err := rt.StopTask(ctx, task.ID, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if stopped, err := rt.Inspect(ctx, task.ID); err != nil || stopped.Running {
		t.Fatalf("a stopped task came back: %+v, %v", stopped, err)
	}

	// A task never kept running stays down after a crash: the controller
	// reports it.
	plain, err := rt.StartTask(ctx, TaskSpec{Image: img.ID, Labels: labels, ContainerPort: 8080})
	if err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, plain.HostPort, "/healthz")
	crashTask(t, rt, plain.ID)
	eventually(t, "the crashed task to exit", func() bool {
		plain, err = rt.Inspect(ctx, plain.ID)
		return err == nil && !plain.Running
	})
	if plain.RestartCount != 0 || plain.ExitCode != 137 {
		t.Errorf("task without restart policy after a crash: %+v", plain)
	}
}

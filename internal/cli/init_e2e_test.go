package cli_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// initExample copies the example into a repository of its own without its
// cutover.yaml, runs `cutover init` there, and returns the file it wrote and
// the notes it printed.
func initExample(t *testing.T) (string, []string) {
	t.Helper()
	repo := testenv.ExampleRepo(t, "main", func(dir string) {
		if err := os.Remove(filepath.Join(dir, "cutover.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	cmd := exec.Command(testenv.CutoverBinary(t), "init", "-o", "json", "--home", t.TempDir())
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cutover init: %v\n%s", err, out)
	}
	var res struct{ Notes []string }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return filepath.Join(repo, "cutover.yaml"), res.Notes
}

// TestInitOnTheExampleIsCloseToTheHandWrittenConfig: `cutover init` on the
// example's docker-compose.yml writes a valid config whose health paths,
// routes, build commands, ports and approval match the hand-written
// examples/bluemed/cutover.yaml.
func TestInitOnTheExampleIsCloseToTheHandWrittenConfig(t *testing.T) {
	file, notes := initExample(t)
	got, err := config.Load(file)
	if err != nil {
		t.Fatalf("the config init wrote does not validate:\n%v", err)
	}
	want, err := config.Load(filepath.Join(testenv.ModuleRoot(t), "examples", "bluemed", "cutover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.ServiceNames(), want.ServiceNames()) {
		t.Fatalf("services %v, want %v (notes: %q)", got.ServiceNames(), want.ServiceNames(), notes)
	}
	for _, name := range want.ServiceNames() {
		g, w := got.Services[name], want.Services[name]
		if g.Health.Path != w.Health.Path {
			t.Errorf("%s: health path %q, want %q (from the compose healthcheck)", name, g.Health.Path, w.Health.Path)
		}
		if g.Route != w.Route {
			t.Errorf("%s: route %+v, want %+v", name, g.Route, w.Route)
		}
		out := "-o bin/" + name
		if g.Build == nil || len(g.Build.Commands) != 1 || !strings.Contains(g.Build.Commands[0], "go build") || !strings.Contains(g.Build.Commands[0], out) {
			t.Errorf("%s: build %+v, want one go build command with %s (the Dockerfile copies that prebuilt binary)", name, g.Build, out)
		}
	}
	if got.Services["backend"].Port != want.Services["backend"].Port {
		t.Errorf("backend port %d, want %d", got.Services["backend"].Port, want.Services["backend"].Port)
	}
	if !slices.Equal(got.EnvironmentNames(), want.EnvironmentNames()) {
		t.Fatalf("environments %v, want %v", got.EnvironmentNames(), want.EnvironmentNames())
	}
	for _, name := range want.EnvironmentNames() {
		g, w := got.Environments[name], want.Environments[name]
		if g.Listen != w.Listen || g.Branch != w.Branch || g.PromoteFrom != w.PromoteFrom || g.Strategy.Type != w.Strategy.Type {
			t.Errorf("%s: listen %+v branch %q promote_from %q strategy %s; want %+v %q %q %s",
				name, g.Listen, g.Branch, g.PromoteFrom, g.Strategy.Type, w.Listen, w.Branch, w.PromoteFrom, w.Strategy.Type)
		}
		if (g.Approval == nil) != (w.Approval == nil) || g.Approval != nil && !reflect.DeepEqual(*g.Approval, *w.Approval) {
			t.Errorf("%s: approval %+v, want %+v", name, g.Approval, w.Approval)
		}
	}
	for _, n := range notes {
		if strings.Contains(n, "skipped") || strings.Contains(n, "not deployed") {
			t.Errorf("note %q: every service of the example should be deployed", n)
		}
	}
}

// TestInitConfigUpServes runs `cutover up` on what init wrote, changed only
// to a unique project and free ports, and checks that the app serves: the
// backend under /api on the frontend's origin, and the frontend.
func TestInitConfigUpServes(t *testing.T) {
	testenv.RequireDocker(t)
	file, _ := initExample(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	e := &e2e{t: t, bin: testenv.CutoverBinary(t), home: t.TempDir(), file: file, project: "init" + hex.EncodeToString(b[:]), port: testenv.FreePort(t)}
	testenv.Replace(t, file,
		"project: bluemed", "project: "+e.project,
		"port: 8080\n      test_port: 8081", fmt.Sprintf("port: %d\n      test_port: %d", e.port, testenv.FreePort(t)),
		"port: 8180", fmt.Sprintf("port: %d", testenv.FreePort(t)))
	t.Cleanup(e.cleanup)
	e.mustRun("up", "production")
	code, hdr, body := get(t, e.url("/api/health"))
	if code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("backend through the proxy: %d %s", code, body)
	}
	// The build commands link the build ID in, as the hand-written ones do.
	if v := hdr.Get("X-Bluemed-Version"); v == "" || v == "dev" {
		t.Errorf("backend version %q: the build commands did not set main.version", v)
	}
	if code, _, body := get(t, e.url("/appointments/42")); code != 200 || !strings.Contains(strings.ToLower(body), "<html") {
		t.Fatalf("frontend through the proxy: %d %.80s", code, body)
	}
	if code, _, body := get(t, e.url("/api/appointments")); code != 200 || !strings.HasPrefix(strings.TrimSpace(body), "[") && !strings.HasPrefix(strings.TrimSpace(body), "{") {
		t.Fatalf("the frontend's same-origin API call: %d %.80s", code, body)
	}
}

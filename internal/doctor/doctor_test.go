package doctor

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/registry"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

func loadConfig(t *testing.T, port, testPort int) *config.Config {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cutover.yaml")
	y := fmt.Sprintf("version: 1\nproject: shop\nservices:\n  web: { image: shop/web:1, port: 8000 }\nenvironments:\n  production: { listen: { port: %d, test_port: %d } }\n", port, testPort)
	if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func byName(cs []Check) map[string]Check {
	m := map[string]Check{}
	for _, c := range cs {
		m[c.Name] = c
	}
	return m
}

// TestDoctorFindsEachProblemWithAFix: an unreachable engine, a listener port
// another process holds, a damaged store and a registry address taken by
// something that is not a registry each fail with a fix; a stopped proxy is a
// warning.
func TestDoctorFindsEachProblemWithAFix(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	home := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := loadConfig(t, taken.Addr().(*net.TCPAddr).Port, testenv.FreePort(t))
	if err := os.WriteFile(filepath.Join(home, "cutover.db"), []byte("this is not a SQLite database, but a damaged file"), 0o600); err != nil {
		t.Fatal(err)
	}
	notRegistry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	defer notRegistry.Close()
	if err := os.WriteFile(filepath.Join(home, "registry.addr"), []byte(strings.TrimPrefix(notRegistry.URL, "http://")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cs := Run(context.Background(), Options{Home: home, Config: cfg})
	got := byName(cs)
	for name, want := range map[string]string{
		"docker":           "Docker engine",
		"ports production": "environments.production.listen.port",
		"store":            "cutover.db",
		"registry":         "is not a registry",
	} {
		c := got[name]
		if c.Status != Fail || !strings.Contains(c.Detail, want) || c.Fix == "" {
			t.Errorf("%s: %+v; want fail mentioning %q, with a fix", name, c, want)
		}
	}
	// The fix works without cutover's source (a release archive has no
	// scripts/): scripts/setup.sh only as the option of a checkout.
	if c := got["docker"]; !strings.Contains(c.Fix, "sudo systemctl start docker") ||
		strings.Contains(c.Fix, "setup.sh") && !strings.Contains(c.Fix, "in a checkout of cutover's source") ||
		strings.Contains(c.Detail, "systemctl") {
		t.Errorf("docker: %+v; want a fix that starts (or installs) the engine without scripts/, said once", c)
	}
	if c := got["proxy"]; c.Status != Warn || c.Fix == "" {
		t.Errorf("proxy: %+v; want a warning with a fix", c)
	}
	if c := got["git"]; c.Status != OK {
		t.Errorf("git: %+v", c)
	}
	if !Failed(cs) {
		t.Error("Failed = false")
	}

	cs = Run(context.Background(), Options{Home: home, ConfigErr: fmt.Errorf("cutover.yaml:3:1: services: missing\nmore")})
	if c := byName(cs)["config"]; c.Status != Fail || c.Detail != "cutover.yaml: cutover.yaml:3:1: services: missing" || c.Fix == "" {
		t.Errorf("config: %+v", c)
	}
}

// TestDoctorOnAHealthyMachine runs against the real engine, a real store and
// the real embedded registry: everything is ok but the stopped proxy.
func TestDoctorOnAHealthyMachine(t *testing.T) {
	testenv.RequireDocker(t)
	ctx := context.Background()
	home := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(home, "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	reg, err := registry.Start(ctx, registry.Options{Dir: filepath.Join(home, "registry")})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close(ctx)
	if err := os.WriteFile(filepath.Join(home, "registry.addr"), []byte(reg.Addr()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cs := Run(ctx, Options{Home: home, Config: loadConfig(t, testenv.FreePort(t), testenv.FreePort(t)), MinFreeBytes: 1})
	for _, c := range cs {
		want := OK
		if c.Name == "proxy" {
			want = Warn
		}
		if c.Status != want {
			t.Errorf("%s: %+v, want %s", c.Name, c, want)
		}
	}
	got := byName(cs)
	if !strings.Contains(got["docker"].Detail, "API 1.") || !strings.Contains(got["registry"].Detail, "serving at "+reg.Addr()) ||
		!strings.Contains(got["store"].Detail, "integrity check ok") || got["disk cutover home"].Detail == "" {
		t.Errorf("details: %+v", got)
	}
	if Failed(cs) {
		t.Error("Failed = true")
	}
}

func TestOlderAPI(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{{"1.40", true}, {"1.41", false}, {"1.52", false}, {"0.99", true}, {"2.0", false}} {
		if got := olderAPI(c.v, "1.41"); got != c.want {
			t.Errorf("olderAPI(%s) = %v", c.v, got)
		}
	}
}

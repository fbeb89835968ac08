package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
)

// storeWithADeployment writes a cutover.yaml and a store holding one finished
// deployment of production that took about 90s, made by this OS user from a
// commit, and returns the project directory and the home.
func storeWithADeployment(t *testing.T) (dir, home string) {
	t.Helper()
	dir, home = t.TempDir(), t.TempDir()
	y := "version: 1\nproject: shop\nservices:\n  web: { image: shop/web:1, port: 8000 }\nenvironments:\n  production: { listen: { port: 18080 } }\n"
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(home, "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	started := time.Now().Add(-90 * time.Second).UTC()
	rev := store.Revision{ID: "r-1", Project: "shop", Environment: "production", Source: "commit 0123456789ab",
		Services: map[string]store.ServiceRevision{"web": {Image: "sha256:" + strings.Repeat("ab", 32), ConfigHash: "h"}}, CreatedAt: started}
	if err := st.CreateRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	d := store.Deployment{ID: "d-1", Project: "shop", Environment: "production", Revision: "r-1", Strategy: "blue_green",
		Phase: "starting", Owner: release.LocalActor(), CreatedAt: started}
	if err := st.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	d.Status, d.Phase, d.TrafficPercent, d.Reason = store.DeploymentSucceeded, "done", 100, "all traffic on r-1"
	if _, err := st.UpdateDeployment(ctx, d, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutEnvState(ctx, store.EnvState{Project: "shop", Environment: "production", Revision: "r-1", Status: "up"}, 0); err != nil {
		t.Fatal(err)
	}
	return dir, home
}

// TestHistoryAndStatusWithEngineDown: with no Docker engine (and no proxy),
// history shows date, duration, actor and source commit from the store, and
// status shows what the store knows and says what it could not read.
func TestHistoryAndStatusWithEngineDown(t *testing.T) {
	dir, home := storeWithADeployment(t)
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")

	code, out, errOut := run(t, dir, "history", "production", "--home", home)
	if code != 0 {
		t.Fatalf("history: exit %d\n%s%s", code, out, errOut)
	}
	line := regexp.MustCompile(`(?m)^d-1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+1m3\ds\s+` + regexp.QuoteMeta(auth.LocalUser().Name) + `\s+blue_green\s+r-1\s+succeeded\s+all traffic on r-1$`)
	if !line.MatchString(out) || !strings.Contains(out, "commit 0123456789ab") {
		t.Fatalf("history does not show date, duration, actor %q and commit:\n%s", auth.LocalUser().Name, out)
	}
	code, out, _ = run(t, "", "history", "production", "--home", home, "-o", "json")
	var h struct {
		Deployments []struct{ ID, Actor, Duration, Owner string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil || len(h.Deployments) != 1 || h.Deployments[0].Actor != auth.LocalUser().Name || !strings.HasPrefix(h.Deployments[0].Duration, "1m3") {
		t.Fatalf("history json: exit %d %s", code, out)
	}

	code, out, errOut = run(t, "", "status", "production", "--home", home)
	if code != 0 {
		t.Fatalf("status with the engine down: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"production: up (revision r-1)", "deployment d-1: succeeded", "not read: tasks: ", "Docker engine", "not read: target health: the cutover proxy is not running"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}

// TestDoctorCommandFailsWithFixes: with the engine down, `cutover doctor`
// exits 1 and prints each problem with its fix; --output json says ok false.
func TestDoctorCommandFailsWithFixes(t *testing.T) {
	dir, home := storeWithADeployment(t)
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	code, out, errOut := run(t, dir, "doctor", "--home", home)
	if code != 1 || !strings.Contains(out, "fail docker") || !strings.Contains(out, "fix: start it: `sudo systemctl start docker`") ||
		!strings.Contains(out, "ok   store") || !strings.Contains(errOut, "some checks failed") {
		t.Fatalf("doctor: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "", "doctor", "--home", home, "-o", "json")
	var res struct {
		OK     bool
		Checks []struct{ Name, Status, Fix string }
	}
	if code != 1 || json.Unmarshal([]byte(out), &res) != nil || res.OK || len(res.Checks) < 6 {
		t.Fatalf("doctor json: exit %d %s", code, out)
	}
}

package release_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/secretstore"
)

// A service's secret reaches its tasks from the home's secret store, and
// nowhere else: a deploy without its value fails before anything is
// built; with it, the task's environment has it; a new value reaches the
// tasks of the next deployment; and no file of the home but the secret
// store holds the value (the state store, its WAL, the load balancer's
// state, the registry), nor do status, history or the revision, and
// cutover logs masks it in what the task printed.
func TestSecretsReachTheTasksAndNothingElse(t *testing.T) {
	p := newProjectWith(t, quick, "    secrets: [WEB_SECRET]")
	ctx := context.Background()

	_, err := p.m.Deploy(ctx, "production", release.DeployOptions{Timeout: time.Minute})
	var missing secretstore.MissingError
	if !errors.As(err, &missing) || !strings.Contains(err.Error(), "cutover secrets set production WEB_SECRET") {
		t.Fatalf("deploy without the secret's value: %v", err)
	}
	if h, err := p.m.History(ctx, "production", 10); err != nil || len(h.Deployments) != 0 || len(h.Revisions) != 0 {
		t.Fatalf("a deploy refused for a missing secret left history: %+v, %v", h, err)
	}

	if st, err := p.m.Status(ctx, "production"); err != nil || len(st) != 1 || strings.Join(st[0].MissingSecrets, ",") != "WEB_SECRET" {
		t.Fatalf("status before the secret is set: %+v, %v", st, err)
	}
	first, second := randomValue(t), randomValue(t)
	if c, err := p.m.SetSecret("production", "WEB_SECRET", first); err != nil || c.Replaced || strings.Join(c.Services, ",") != "web" {
		t.Fatalf("set: %+v, %v", c, err)
	}
	if _, err := p.m.Deploy(ctx, "production", release.DeployOptions{Timeout: time.Minute}); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	if got := p.get("/env/WEB_SECRET"); got != first {
		t.Fatalf("the task's WEB_SECRET is %q, want the value set", got)
	}

	// A new value: the running task keeps the old one until the next deployment.
	if c, err := p.m.SetSecret("production", "WEB_SECRET", second); err != nil || !c.Replaced {
		t.Fatalf("set again: %+v, %v", c, err)
	}
	if got := p.get("/env/WEB_SECRET"); got != first {
		t.Fatalf("the running task's WEB_SECRET changed to %q before a deployment", got)
	}
	if _, err := p.m.Deploy(ctx, "production", release.DeployOptions{Timeout: time.Minute}); err != nil {
		t.Fatalf("second deploy: %v", err)
	}
	if got := p.get("/env/WEB_SECRET"); got != second {
		t.Fatalf("after the next deployment the task's WEB_SECRET is %q, want the new value", got)
	}

	// The task printed its secret: cutover logs shows the line, masked.
	var logged []string
	err = p.m.ServiceLogs(ctx, "production", "web", release.ServiceLogsOptions{Since: time.Minute, Tail: 100}, func(l release.LogLine) error {
		logged = append(logged, l.Message)
		return nil
	})
	if all := strings.Join(logged, "\n"); err != nil || !strings.Contains(all, "starting with secret ***") || strings.Contains(all, first) || strings.Contains(all, second) {
		t.Errorf("the service's logs (%v):\n%s", err, all)
	}

	list, err := p.m.Secrets("production")
	if err != nil || len(list) != 1 || list[0].Name != "WEB_SECRET" || !list[0].Set {
		t.Fatalf("secrets list: %+v, %v", list, err)
	}
	st, err := p.m.Status(ctx, "production")
	if err != nil || len(st) != 1 || len(st[0].MissingSecrets) != 0 {
		t.Fatalf("status once set: %+v, %v", st, err)
	}
	h, err := p.m.History(ctx, "production", 10)
	if err != nil {
		t.Fatal(err)
	}
	for what, v := range map[string]any{"status": st, "history": h, "secrets list": list} {
		b, _ := json.Marshal(v)
		if bytes.Contains(b, []byte(first)) || bytes.Contains(b, []byte(second)) {
			t.Errorf("%s holds a secret's value: %s", what, b)
		}
	}
	secretsDir := filepath.Join(p.home, "secrets")
	err = filepath.WalkDir(p.home, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path, secretsDir+string(filepath.Separator)) || d.Type()&fs.ModeSocket != 0 {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // a socket or a file removed meanwhile
		}
		if bytes.Contains(b, []byte(first)) || bytes.Contains(b, []byte(second)) {
			t.Errorf("%s holds a secret's value", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func randomValue(t *testing.T) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "value-" + hex.EncodeToString(b[:])
}

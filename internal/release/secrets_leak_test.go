package release_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// crashMain prints its secret as a misconfigured application does (a
// failed connection string, a config dump) and exits before it serves.
const crashMain = `package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "connecting with password " + os.Getenv("WEB_SECRET") + " failed")
	os.Exit(3)
}
`

// A task that exits after writing its secret to its log: cutover quotes the
// task's last log lines in the failure it records (the deployment's reason,
// its events, the error Deploy returns), which status, history, the /v1 API
// and a pipeline's log show to any viewer. The secret's value must not be
// among them: cutover knows it, and must mask it.
func TestAttackSecretPrintedByACrashingTaskIsNotRecorded(t *testing.T) {
	testenv.RequireDocker(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "rel" + hex.EncodeToString(b[:])
	dir, home := t.TempDir(), t.TempDir()
	port := testenv.FreePort(t)
	files := map[string]string{
		"web/go.mod":     "module web\n\ngo 1.22\n",
		"web/main.go":    crashMain,
		"web/Dockerfile": "FROM scratch\nCOPY bin/web /web\nENTRYPOINT [\"/web\"]\n",
		"cutover.yaml": fmt.Sprintf(`version: 1
project: %s
services:
  web:
    build:
      context: web
      commands: ["CGO_ENABLED=0 go build -trimpath -o bin/web ."]
    port: 8000
    health: { path: /, interval: 500ms, timeout: 400ms, healthy_threshold: 1 }
    secrets: [WEB_SECRET]
environments:
  production:
    listen: { port: %d, test_port: %d }
    strategy: { type: blue_green, termination_wait: 0s }
`, name, port, testenv.FreePort(t)),
	}
	for path, body := range files {
		full := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	m, err := release.Open(ctx, filepath.Join(dir, "cutover.yaml"), home)
	if err != nil {
		t.Fatal(err)
	}
	m.Binary = testenv.CutoverBinary(t)
	m.Actor = "tester (pid 1 on test)"
	t.Cleanup(func() {
		ctx := context.WithoutCancel(ctx)
		_, _ = m.Down(ctx, "production")
		_ = release.StopProxy(ctx, home, 5*time.Second)
		m.Close()
		testenv.RemoveProject(name)
	})

	value := randomValue(t)
	if _, err := m.SetSecret("production", "WEB_SECRET", value); err != nil {
		t.Fatal(err)
	}
	_, err = m.Deploy(ctx, "production", release.DeployOptions{Timeout: time.Minute})
	if err == nil {
		t.Fatal("the deploy of a task that exits succeeded")
	}
	if !strings.Contains(err.Error(), "exited with code 3") {
		t.Fatalf("deploy: %v, want the task's exit", err)
	}
	if strings.Contains(err.Error(), value) {
		t.Errorf("the deploy's error holds the secret's value: %v", err)
	}
	h, err := m.History(ctx, "production", 10)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(h); bytes.Contains(b, []byte(value)) {
		t.Errorf("history holds the secret's value: %s", b)
	}
	secretsDir := filepath.Join(home, "secrets")
	_ = filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path, secretsDir+string(filepath.Separator)) || d.Type()&fs.ModeSocket != 0 {
			return err
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(value)) {
			t.Errorf("%s holds the secret's value", path)
		}
		return nil
	})
}

package release_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
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
	p := newProjectFrom(t, crashMain, quick, "    secrets: [WEB_SECRET]")
	m, home := p.m, p.home
	ctx := context.Background()

	value := randomValue(t)
	if _, err := m.SetSecret("production", "WEB_SECRET", value); err != nil {
		t.Fatal(err)
	}
	_, err := m.Deploy(ctx, "production", release.DeployOptions{Timeout: time.Minute})
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

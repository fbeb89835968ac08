package release_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
)

// A value read from standard input may hold a NUL byte (a binary key piped
// in). No environment variable can: the engine refuses to start the task
// and its error quotes the variable whole, value included, which became the
// deployment's recorded reason. The value is refused when it is set, and a
// file that holds one anyway (written by hand) is not quoted.
func TestAttackSecretWithANulByteIsRefusedNotQuotedByTheEngine(t *testing.T) {
	p := newProjectWith(t, quick, "    secrets: [WEB_SECRET]")
	ctx := context.Background()
	value := randomValue(t) + "\x00tail"
	if _, err := p.m.SetSecret("production", "WEB_SECRET", value); err == nil {
		t.Errorf("SetSecret accepted a value with a NUL byte, which no environment variable can hold")
	} else if strings.Contains(err.Error(), value[:20]) {
		t.Errorf("the refusal quotes the value: %v", err)
	}

	b, _ := json.Marshal(map[string]string{"WEB_SECRET": value})
	dir := filepath.Join(p.home, "secrets", p.m.Config.Project)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "production.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	head := value[:strings.IndexByte(value, 0)]
	_, err := p.m.Deploy(ctx, "production", release.DeployOptions{Timeout: time.Minute})
	if err == nil {
		t.Fatal("a task given a NUL byte in its environment started")
	}
	if strings.Contains(err.Error(), head) {
		t.Errorf("the deploy's error quotes the secret's value: %v", err)
	}
	h, _ := p.m.History(ctx, "production", 10)
	if b, _ := json.Marshal(h); bytes.Contains(b, []byte(head)) {
		t.Errorf("history holds the secret's value: %s", b)
	}
}

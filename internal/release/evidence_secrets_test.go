package release

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// The evidence of an approval quotes the last log lines of staging's
// tasks, and is stored with the approval and served to viewers
// (GET /v1/executions/{id}/evidence, the dashboard). A task that logs its
// secret (a connection string at start) must not put it there.
func TestAttackEvidenceDoesNotQuoteASecretATaskLogged(t *testing.T) {
	testenv.RequireDocker(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	project := "ev" + hex.EncodeToString(b[:])
	value := "value-" + hex.EncodeToString(b[:]) + "-secret"

	// A scratch image whose process prints its secret and stays up.
	img := t.TempDir()
	files := map[string]string{
		"go.mod":     "module p\n\ngo 1.22\n",
		"main.go":    "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n\t\"time\"\n)\n\nfunc main() {\n\tfmt.Println(\"connecting with \" + os.Getenv(\"DB_PASSWORD\"))\n\ttime.Sleep(time.Minute)\n}\n",
		"Dockerfile": "FROM scratch\nCOPY p /p\nENTRYPOINT [\"/p\"]\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(img, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", "p", ".")
	build.Dir, build.Env = img, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tag := "cutover-test/" + project + ":1"
	if out, err := exec.Command("docker", "build", "-q", "-t", tag, img).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		testenv.RemoveProject(project)
		_ = exec.Command("docker", "rmi", "-f", tag).Run()
	})

	dir, home := t.TempDir(), t.TempDir()
	y := fmt.Sprintf("version: 1\nproject: %s\nservices:\n  web: { image: %s, port: 8000, secrets: [DB_PASSWORD] }\n"+
		"environments:\n  staging: { listen: { port: %d } }\n  production: { listen: { port: %d }, promote_from: staging }\n",
		project, tag, testenv.FreePort(t), testenv.FreePort(t))
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := Open(ctx, filepath.Join(dir, "cutover.yaml"), home)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.SetSecret("staging", "DB_PASSWORD", value); err != nil {
		t.Fatal(err)
	}
	// A staging task as a deployment starts it: the labels, the secret in its environment.
	if out, err := exec.Command("docker", "run", "-d", "--label", "dev.cutover.managed=true",
		"--label", "dev.cutover.project="+project, "--label", "dev.cutover.environment=staging",
		"--label", "dev.cutover.service=web", "-e", "DB_PASSWORD="+value, tag).CombinedOutput(); err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	var ev StagingEvidence
	for range 50 {
		ev = m.evidence(ctx, m.Config, "staging", "").(StagingEvidence)
		if len(ev.Logs) > 0 {
			break
		}
		exec.Command("sleep", "0.1").Run()
	}
	raw, _ := json.Marshal(ev)
	if len(ev.Logs) == 0 || !bytes.Contains(raw, []byte("connecting with")) {
		t.Fatalf("the evidence has no log line of the staging task: %s", raw)
	}
	if bytes.Contains(raw, []byte(value)) {
		t.Errorf("the evidence holds the secret's value: %s", raw)
	}
}

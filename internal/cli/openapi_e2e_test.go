package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// schemathesis (PyPI) against a real `cutover serve`: it reads
// /v1/openapi.json and sends generated requests, valid and invalid, to
// every operation with an admin token: no answer may be a 5xx, and every
// answer must conform to the document (status codes, content types,
// schemas), refuse what the document forbids and accept what it allows.
func TestOpenAPIContractWithSchemathesis(t *testing.T) {
	testenv.RequireDocker(t) // serve connects to Docker for the local environment
	st := testenv.RequireCommand(t, "schemathesis", "pip install schemathesis")
	bin := testenv.CutoverBinary(t)
	home := t.TempDir()
	// A pipeline that ends at once, so a followed log (?follow=1) of an
	// execution schemathesis queued ends within its request timeout.
	file, _ := commandRepo(t, "oa", `pipeline:
  stages:
    - name: build
      actions: [{ name: compile, kind: command, commands: ["echo built"] }]
`)
	out, err := exec.Command(bin, "token", "create", "schemathesis", "--role", "admin", "-o", "json", "-f", file, "--home", home).CombinedOutput()
	if err != nil {
		t.Fatalf("cutover token create: %v\n%s", err, out)
	}
	var tok struct{ Token string }
	if err := json.Unmarshal(out, &tok); err != nil || tok.Token == "" {
		t.Fatalf("cutover token create -o json: %v\n%s", err, out)
	}
	d := startServe(t, bin, file, home, testenv.FreePort(t))

	run := func(name string, args ...string) {
		t.Helper()
		report := filepath.Join(t.TempDir(), name+".xml")
		cmd := exec.Command(st, append([]string{"run", d.base + "/v1/openapi.json", "--url", d.base,
			"-H", "Authorization: Bearer " + tok.Token, "--checks", "all", "--max-examples", "25", "--workers", "1",
			"--request-timeout", "15", "--report", "junit", "--report-junit-path", report}, args...)...)
		cmd.Env = append(os.Environ(), "NO_COLOR=1", "SCHEMATHESIS_TELEMETRY=false")
		cmd.Dir = t.TempDir() // its .schemathesis cache goes there
		out, err := cmd.CombinedOutput()
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(home, "serve.log"))
			t.Fatalf("schemathesis %s: %v\n%s\n--- cutover serve log (tail) ---\n%s", name, err, out, tail(string(log), 4000))
		}
		if !strings.Contains(string(out), "passed") {
			t.Fatalf("schemathesis %s ran no test case:\n%s", name, out)
		}
		t.Logf("schemathesis %s:\n%s", name, tail(string(out), 600))
	}
	// Every operation, with stateful sequences (links between responses
	// and requests), except revoking tokens: the sequences would revoke
	// the token this run uses (GET /v1/tokens lists it).
	run("all", "--exclude-operation-id", "revokeToken")
	// Revoking, without sequences (so only generated names).
	run("revoke", "--include-operation-id", "revokeToken", "--phases", "examples,coverage,fuzzing")
}

func tail(s string, n int) string {
	if len(s) > n {
		return fmt.Sprintf("...%s", s[len(s)-n:])
	}
	return s
}

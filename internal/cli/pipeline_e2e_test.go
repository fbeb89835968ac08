package cli_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// `cutover run` end to end on the example, copied into a repository of its
// own with a unique project and ports, committed on develop: build with
// unit tests, push to the embedded registry, compose integration, rolling
// deploy to staging by digest, verify (health, CORS, SPA fallback).
func TestRunDeploysStagingFromACommit(t *testing.T) {
	testenv.RequireDocker(t)
	bin := testenv.CutoverBinary(t)
	project := fmt.Sprintf("run%d", time.Now().UnixNano()%1_000_000)
	port := testenv.FreePort(t)
	clone := testenv.ExampleRepo(t, "develop", func(dir string) {
		testenv.Replace(t, filepath.Join(dir, "cutover.yaml"),
			"project: bluemed", "project: "+project,
			"port: 8080, test_port: 8081", fmt.Sprintf("port: %d, test_port: %d", testenv.FreePort(t), testenv.FreePort(t)),
			"port: 8180", fmt.Sprintf("port: %d", port))
	})
	file := filepath.Join(clone, "cutover.yaml")
	home := t.TempDir()
	run := testenv.CLI{Bin: bin, File: file, Home: home}.Run
	t.Cleanup(func() {
		run("down", "staging")
		run("proxy", "stop")
		testenv.RemoveProject(project)
	})

	out, errOut, err := run("run", "--kind", "push", "-o", "json")
	if err != nil {
		t.Fatalf("cutover run: %v\n%s\n%s", err, out, errOut)
	}
	var x struct {
		ID, Status string
		Variables  map[string]string
	}
	if err := json.Unmarshal([]byte(out), &x); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if x.Status != "succeeded" || !strings.Contains(x.Variables["CUTOVER_IMAGE_DIGEST_REF_BACKEND"], "@sha256:") {
		t.Fatalf("execution %+v", x)
	}
	code, _, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/health", port))
	if code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("staging after the pipeline: %d %s", code, body)
	}
	logs, _, err := run("logs", x.ID)
	if err != nil || !strings.Contains(logs, "pushed 127.0.0.1:") || !strings.Contains(logs, "3 of 3 integration checks passed") {
		t.Fatalf("logs: %v\n%s", err, logs)
	}
	hist, _, _ := run("history", "staging", "-o", "json")
	if !strings.Contains(hist, `@sha256:`) {
		t.Fatalf("the staging revision is not pinned by digest: %s", hist)
	}

	// A pull request of the same commit builds and tests, and deploys nothing.
	out, errOut, err = run("run", "--kind", "pull_request", "--branch", "feature/x", "--commit", testenv.Git(t, clone, "rev-parse", "HEAD"), "--pr", "7", "-o", "json")
	if err != nil {
		t.Fatalf("pull request run: %v\n%s\n%s", err, out, errOut)
	}
	var pr struct {
		Status string
		Stages []struct{ Name, Status string }
	}
	if err := json.Unmarshal([]byte(out), &pr); err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, st := range pr.Stages {
		got += st.Name + "=" + st.Status + " "
	}
	if pr.Status != "succeeded" || got != "build=succeeded integration=succeeded staging=skipped production=skipped " {
		t.Fatalf("pull request: %s, stages %s", pr.Status, got)
	}
	if after, _, _ := run("history", "staging", "-o", "json"); strings.Count(after, `"status": "succeeded"`) != strings.Count(hist, `"status": "succeeded"`) {
		t.Fatal("the pull request deployed to staging")
	}
}

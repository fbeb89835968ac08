package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
)

// `cutover executions ID` shows the approver the evidence before the
// decision: the commit and its changed files, the images by digest, what
// is promoted, staging's figures and events, and how to decide.
func TestExecutionsShowsTheApprovalEvidenceBeforeTheDecision(t *testing.T) {
	dir, home := t.TempDir(), t.TempDir()
	file := filepath.Join(dir, "cutover.yaml")
	if err := os.WriteFile(file, []byte(`version: 1
project: ev
services:
  hello: { image: "127.0.0.1:5999/hello:1", port: 8080 }
environments:
  production: { branch: main, listen: { port: 18377 } }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(home, "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Stored as the pipeline engine stores them (its approval gate writes
	// this evidence; running the engine here would need Docker).
	x := store.Execution{ID: "x-ev-1", Project: "ev", Pipeline: "default", Trigger: store.TriggerPush, Branch: "main", Commit: strings.Repeat("c", 40), Status: store.ExecutionWaiting}
	if err := st.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	digest := "127.0.0.1:5999/hello@sha256:" + strings.Repeat("d", 64)
	ev, _ := json.Marshal(pipeline.Evidence{Commit: x.Commit, Branch: "main", Message: "fix the latency\n\nlong body", Author: "alice",
		ChangedFiles: []string{"backend/main.go", "backend/db.go"}, Images: map[string]string{"hello": digest}, Environment: "production", PromoteFrom: "staging",
		Promotion: &pipeline.Promotion{From: "staging", Deployment: "d-stg-7", Revision: "r-stg-7", Images: map[string]string{"hello": digest}},
		Staging: map[string]any{"environment": "staging",
			"load_balancer": []map[string]any{{"group": "ev.staging/hello/blue", "requests": 1200, "p95_seconds": 0.042, "error_rate": 0.001, "healthy": 2, "unhealthy": 0}},
			"events":        []store.Event{{Time: time.Now(), Kind: "deployment.succeeded", Message: "deployment d-stg-7 succeeded"}}}})
	now := time.Now()
	if err := st.RequestApproval(ctx, store.Approval{Execution: x.ID, Stage: "production", Action: "approve", RequestedAt: now.Add(-time.Minute), Expires: now.Add(time.Hour), Evidence: ev}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, out, errOut := run(t, "", "executions", x.ID, "-f", file, "--home", home)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"approval production/approve to deploy production: pending (asked 1m",
		"commit   cccccccccccc on main by alice: fix the latency",
		"changed  2 file(s): backend/main.go, backend/db.go",
		"image    hello        " + digest,
		"promotes deployment d-stg-7 of staging (revision r-stg-7)",
		"ev.staging/hello/blue", "1200 requests", "p95 42ms", "errors  0.10%", "targets 2 healthy, 0 unhealthy",
		"deployment.succeeded",
		"cutover approve x-ev-1 --comment",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	t.Logf("cutover executions %s:\n%s", x.ID, out)
	code, out, _ = run(t, "", "executions", x.ID, "-f", file, "--home", home, "-o", "json")
	var view struct {
		ID        string
		Approvals []store.Approval
	}
	if code != 0 || json.Unmarshal([]byte(out), &view) != nil || view.ID != x.ID || len(view.Approvals) != 1 || len(view.Approvals[0].Evidence) == 0 {
		t.Fatalf("json: %d %s", code, out)
	}
}

// The staging figures name the connect failures behind an error rate, so
// "0 requests, errors 100%" does not puzzle the approver (a helper's
// review).
func TestEvidenceNamesConnectFailures(t *testing.T) {
	var b strings.Builder
	printStaging(&b, &release.StagingEvidence{Environment: "staging", LoadBalancer: []release.GroupFigures{
		{Group: "shop.staging/api/green", Requests: 0, ErrorRate: 1, ConnectFailed: 20, Healthy: 1},
	}})
	if out := b.String(); !strings.Contains(out, "20 more could not connect") {
		t.Fatalf("the evidence does not show the 20 connect failures behind its error rate:\n%s", out)
	}
}

// The evidence's warning (staging serves another revision than the one
// that ran the commit) is shown before its figures.
func TestEvidenceShowsItsWarning(t *testing.T) {
	var b strings.Builder
	printStaging(&b, &release.StagingEvidence{Environment: "staging", Warning: "staging ran this commit as revision r-1 but now serves r-2"})
	if out := b.String(); !strings.Contains(out, "NOTE: staging ran this commit as revision r-1 but now serves r-2") {
		t.Fatalf("the evidence does not show its warning:\n%s", out)
	}
}

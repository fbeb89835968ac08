package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// api calls the daemon's JSON API with a bearer token.
func (d *daemonProc) api(method, path, token, body string) (int, string) {
	d.t.Helper()
	req, _ := http.NewRequest(method, d.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitExecution polls GET /v1/executions/ID until ok says so (or fails the test).
func (d *daemonProc) waitExecution(id, token, what string, limit time.Duration, ok func(pipeExecution) bool) pipeExecution {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		code, body := d.api(http.MethodGet, "/v1/executions/"+id, token, "")
		var x pipeExecution
		if code == http.StatusOK && json.Unmarshal([]byte(body), &x) == nil && ok(x) {
			return x
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(d.log.Name())
			d.t.Fatalf("execution %s: %s not reached in %s (last: %d %s)\nserve log:\n%s", id, what, limit, code, body, log)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// The seeds' main flow through the daemon, on examples/bluemed in a
// repository of its own: develop runs a commit through staging; main
// fast-forwarded to the same commit waits for an approval; a deployer may
// not give it, an approver token does (a `by` in the body is ignored);
// production then runs the very images staging verified, by digest; the
// audit log names who approved.
func TestServeShipsOneCommitThroughStagingAndAnApprovalByToken(t *testing.T) {
	p := newPipeRepo(t, "develop")
	token := func(name, role string) string {
		out, errOut, err := p.run("token", "create", name, "--role", role, "-o", "json")
		var tok struct{ Token string }
		if err != nil || json.Unmarshal([]byte(out), &tok) != nil || tok.Token == "" {
			t.Fatalf("token create %s: %v\n%s%s", name, err, out, errOut)
		}
		return tok.Token
	}
	deployer, approver := token("ci", "deployer"), token("alice", "approver")
	d := startServe(t, p.bin, p.file, p.home, testenv.FreePort(t))
	commit := testenv.Git(t, p.clone, "rev-parse", "HEAD")

	trigger := func(branch string) string {
		code, body := d.api(http.MethodPost, "/v1/executions", deployer, `{"branch":"`+branch+`"}`)
		var q struct{ Execution, Queued string }
		if code != http.StatusAccepted || json.Unmarshal([]byte(body), &q) != nil || q.Execution == "" || q.Queued != commit {
			t.Fatalf("trigger %s: %d %s", branch, code, body)
		}
		return q.Execution
	}
	finished := func(x pipeExecution) bool {
		return x.Status != "queued" && x.Status != "running" && x.Status != "waiting"
	}

	staging := d.waitExecution(trigger("develop"), deployer, "the end of develop's execution", 6*time.Minute, finished)
	if staging.Status != "succeeded" || staging.stage("staging") != "succeeded" {
		t.Fatalf("develop: %+v", staging)
	}

	testenv.Git(t, p.clone, "branch", "-f", "main", "HEAD") // the fast-forward of main
	id := trigger("main")
	d.waitExecution(id, deployer, "the approval", 6*time.Minute, func(x pipeExecution) bool { return x.Status == "waiting" || finished(x) })
	if code, body := d.api(http.MethodPost, "/v1/executions/"+id+"/approve", deployer, `{"comment":"me too"}`); code != http.StatusForbidden {
		t.Fatalf("a deployer token approved: %d %s", code, body)
	}
	if code, body := d.api(http.MethodPost, "/v1/executions/"+id+"/approve", approver, `{"comment":"staging looks good","by":"cto"}`); code != http.StatusOK {
		t.Fatalf("approve: %d %s", code, body)
	}
	prod := d.waitExecution(id, deployer, "the end of main's execution", 6*time.Minute, finished)
	if prod.Status != "succeeded" || prod.stage("production") != "succeeded" {
		t.Fatalf("main: %+v", prod)
	}

	s, pr := p.newestRevision("staging"), p.newestRevision("production")
	if s.Source != "commit "+commit || pr.Source != s.Source {
		t.Fatalf("revisions: staging %+v, production %+v", s, pr)
	}
	for name, svc := range s.Services {
		if !strings.Contains(svc.Image, "@sha256:") || pr.Services[name] != svc {
			t.Fatalf("service %s: production runs %+v, staging verified %+v", name, pr.Services[name], svc)
		}
	}
	out, _, err := p.run("audit", "-o", "json")
	if err != nil || !strings.Contains(out, `"alice"`) || strings.Contains(out, `"cto"`) {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	var approvals []map[string]any
	_ = json.Unmarshal([]byte(out), &approvals)
	found := false
	for _, a := range approvals {
		if fmt.Sprint(a["action"]) == "approve" && fmt.Sprint(a["actor"]) == "alice" && strings.Contains(fmt.Sprint(a["target"]), id) && fmt.Sprint(a["outcome"]) == "ok" {
			found = true
		}
	}
	if !found {
		t.Fatalf("the audit log does not record alice's approval of %s:\n%s", id, out)
	}
	// The daemon deployed, but the token that triggered the execution is the actor.
	out, _, err = p.run("history", "production", "-o", "json")
	var hist struct {
		Deployments []struct{ Actor, Owner string }
	}
	if err != nil || json.Unmarshal([]byte(out), &hist) != nil || len(hist.Deployments) == 0 ||
		hist.Deployments[0].Actor != "ci" || !strings.HasSuffix(hist.Deployments[0].Owner, ", execution "+id) {
		t.Fatalf("history production: %v\n%s", err, out)
	}
}

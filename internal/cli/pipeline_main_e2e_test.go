package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// pipeRepo is the example copied into a repository of its own with a
// unique project, free ports and production timings short enough for a test.
type pipeRepo struct {
	t                 *testing.T
	bin, home, clone  string
	file, project     string
	prodPort, stgPort int
}

func newPipeRepo(t *testing.T, branch string) *pipeRepo {
	testenv.RequireDocker(t)
	p := &pipeRepo{t: t, bin: testenv.CutoverBinary(t), home: t.TempDir()}
	p.project = fmt.Sprintf("pm%d", time.Now().UnixNano()%1_000_000_000)
	p.prodPort, p.stgPort = testenv.FreePort(t), testenv.FreePort(t)
	p.clone = testenv.ExampleRepo(t, branch, func(dir string) {
		testenv.Replace(t, filepath.Join(dir, "cutover.yaml"),
			"project: bluemed", "project: "+p.project,
			"port: 8180", fmt.Sprintf("port: %d, test_port: %d", p.stgPort, testenv.FreePort(t)),
			"port: 8080, test_port: 8081", fmt.Sprintf("port: %d, test_port: %d", p.prodPort, testenv.FreePort(t)),
			// Production's real timings are minutes; two steps of 2s keep the
			// blue/green shape. The latency alarm gets room for a busy 2-core
			// machine (builds run beside the load): it must not roll back here.
			"traffic: Linear10PercentEvery1Minute", "linear: { percent: 50, interval: 2s }",
			"bake: 1m", "bake: 2s",
			"termination_wait: 5m", "termination_wait: 2s",
			"threshold: 500ms, datapoints: 3 of 5 }", "threshold: 3s, datapoints: 3 of 5, period: 1s }",
			"threshold: 1% }", "threshold: 1%, period: 1s }",
		)
	})
	p.file = filepath.Join(p.clone, "cutover.yaml")
	t.Cleanup(p.cleanup)
	return p
}

// edit replaces each old string of the example's cutover.yaml (pairs of
// old, new); a missing one fails the test, so a changed example is noticed.
func (p *pipeRepo) edit(pairs ...string) {
	p.t.Helper()
	testenv.Replace(p.t, p.file, pairs...)
}

func (p *pipeRepo) command(args ...string) *exec.Cmd {
	return testenv.CLI{Bin: p.bin, File: p.file, Home: p.home}.Command(args...)
}

func (p *pipeRepo) run(args ...string) (string, string, error) {
	return testenv.CLI{Bin: p.bin, File: p.file, Home: p.home}.Run(args...)
}

func (p *pipeRepo) cleanup() {
	p.run("down", "production")
	p.run("down", "staging")
	p.run("proxy", "stop")
	testenv.RemoveProject(p.project)
}

type pipeExecution struct {
	ID, Status, Error string
	Stages            []struct {
		Name, Status string
		Actions      []struct{ Name, Status, Summary string }
	}
}

func (x pipeExecution) stage(name string) string {
	for _, s := range x.Stages {
		if s.Name == name {
			return s.Status
		}
	}
	return "absent"
}

// runApproved runs `cutover run` for the head of main and approves, from a
// separate process, as soon as the execution waits at the gate.
func (p *pipeRepo) runApproved() pipeExecution {
	p.t.Helper()
	cmd := p.command("run", "--kind", "push", "--branch", "main", "-o", "json")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	approved := ""
	deadline := time.After(4 * time.Minute)
	for {
		select {
		case err := <-done:
			var x pipeExecution
			if jerr := json.Unmarshal([]byte(out.String()), &x); jerr != nil || err != nil {
				p.t.Fatalf("cutover run: %v (approved %q)\nstdout: %s\nstderr: %s", err, approved, out.String(), errb.String())
			}
			if approved != x.ID {
				p.t.Fatalf("execution %s finished without the approval being asked for (approved %q)", x.ID, approved)
			}
			return x
		case <-deadline:
			_ = cmd.Process.Kill()
			<-done
			p.t.Fatalf("cutover run did not finish in 4 minutes\n%s", errb.String())
		case <-time.After(300 * time.Millisecond):
		}
		if approved != "" {
			continue
		}
		list, _, err := p.run("executions", "-o", "json")
		if err != nil {
			continue // the store may not exist yet
		}
		var xs []pipeExecution
		_ = json.Unmarshal([]byte(list), &xs)
		for _, x := range xs {
			if x.Status == "waiting" {
				if o, e, err := p.run("approve", x.ID, "--comment", "ok"); err != nil {
					p.t.Fatalf("cutover approve %s: %v\n%s%s", x.ID, err, o, e)
				}
				approved = x.ID
			}
		}
	}
}

// A commit to main waits for approval, is approved from another process,
// and reaches production blue/green under load without a failed request.
func TestRunPromotesMainToProductionAfterApprovalUnderLoad(t *testing.T) {
	p := newPipeRepo(t, "main")
	url := fmt.Sprintf("http://127.0.0.1:%d/api/health", p.prodPort)

	// Production needs a revision to serve before load can run against it.
	if x := p.runApproved(); x.Status != "succeeded" {
		t.Fatalf("first execution: %+v", x)
	}
	_, hdr, _ := get(t, url)
	first := hdr.Get("X-Bluemed-Version")

	testenv.Git(t, p.clone, "commit", "-q", "--allow-empty", "-m", "second release")
	second := testenv.Git(t, p.clone, "rev-parse", "HEAD")[:7] // CUTOVER_BUILD_ID: the first 7 hex digits

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadDone := make(chan loadgen.Result, 1)
	go func() {
		res, err := loadgen.Run(ctx, loadgen.Options{URL: url, Concurrency: 4, Rate: 200, Duration: 4 * time.Minute, CountHeader: "X-Bluemed-Version"})
		if err != nil {
			t.Error(err)
		}
		loadDone <- res
	}()
	time.Sleep(500 * time.Millisecond)
	x := p.runApproved()
	time.Sleep(300 * time.Millisecond)
	cancel()
	res := <-loadDone
	t.Logf("promotion under load: %v, versions %v", res, res.Header)
	if x.Status != "succeeded" || x.stage("production") != "succeeded" {
		t.Fatalf("second execution: %+v", x)
	}
	if res.Failed != 0 || res.Requests < 100 {
		t.Fatalf("promotion under load: %d of %d requests failed: %v", res.Failed, res.Requests, res.Errors)
	}
	_, hdr, _ = get(t, url)
	if v := hdr.Get("X-Bluemed-Version"); v != second || v == first {
		t.Fatalf("production serves version %q after the promotion; want %q (was %q)", v, second, first)
	}
	out, _, err := p.run("history", "production", "-o", "json")
	var hist struct {
		Deployments []struct{ Strategy, Status string }
	}
	if err != nil || json.Unmarshal([]byte(out), &hist) != nil || len(hist.Deployments) == 0 {
		t.Fatalf("history production: %v\n%s", err, out)
	}
	if d := hist.Deployments[0]; d.Strategy != "blue_green" || d.Status != "succeeded" {
		t.Fatalf("latest production deployment %+v, want blue_green succeeded", d)
	}
}

// A broken compose integration stops the execution before staging and
// leaves no container, network or volume behind.
func TestRunBrokenIntegrationStopsBeforeStagingAndCleansUp(t *testing.T) {
	p := newPipeRepo(t, "develop")
	p.edit("port: 3001, path: /api/health, expect_body: '\"status\":\"ok\"' }", "port: 3001, path: /api/nope, expect_status: 200 }")
	testenv.Git(t, p.clone, "commit", "-qam", "an integration check that cannot pass")

	out, errOut, err := p.run("run", "--kind", "push", "--branch", "develop", "-o", "json")
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("cutover run: want exit 1, got %v\n%s\n%s", err, out, errOut)
	}
	var x pipeExecution
	if err := json.Unmarshal([]byte(out), &x); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if x.Status != "failed" || x.stage("build") != "succeeded" || x.stage("integration") != "failed" || x.stage("staging") != "skipped" {
		t.Fatalf("execution %+v", x)
	}
	if !strings.Contains(x.Error, "/api/nope") {
		t.Errorf("the error should name the failing check: %q", x.Error)
	}
	// The integration project is labelled with its name, cutover-it-<execution>:
	// other packages' tests may run their own integration at the same time.
	it := "label=dev.cutover.integration=cutover-it-" + x.ID
	for _, what := range [][]string{
		{"ps", "-aq", "--filter", "label=dev.cutover.project=" + p.project},
		{"ps", "-aq", "--filter", it},
		{"network", "ls", "-q", "--filter", it},
		{"volume", "ls", "-q", "--filter", it},
	} {
		b, err := exec.Command("docker", what...).Output()
		if err != nil {
			t.Fatalf("docker %v: %v", what, err)
		}
		if ids := strings.Fields(string(b)); len(ids) > 0 {
			t.Errorf("docker %s: left behind %v", strings.Join(what, " "), ids)
		}
	}
}

// The seeds' flow on one commit: a push of develop deploys it to staging;
// the same commit, fast-forwarded to main, waits for the approval, is
// approved and deploys to production the images staging ran, by digest,
// each environment with its own revision.
func TestRunSameCommitFromStagingToProduction(t *testing.T) {
	p := newPipeRepo(t, "develop")
	out, errOut, err := p.run("run", "--kind", "push", "--branch", "develop", "-o", "json")
	var staging pipeExecution
	if err != nil || json.Unmarshal([]byte(out), &staging) != nil || staging.Status != "succeeded" {
		t.Fatalf("develop: %v\n%s\n%s", err, out, errOut)
	}
	testenv.Git(t, p.clone, "branch", "-f", "main", "HEAD") // the fast-forward of main
	if x := p.runApproved(); x.Status != "succeeded" || x.stage("production") != "succeeded" {
		t.Fatalf("main: %+v", x)
	}
	s, pr := p.newestRevision("staging"), p.newestRevision("production")
	commit := testenv.Git(t, p.clone, "rev-parse", "HEAD")
	if s.ID == pr.ID || s.Source != "commit "+commit || pr.Source != s.Source {
		t.Fatalf("revisions: staging %+v, production %+v", s, pr)
	}
	for name, svc := range s.Services {
		if !strings.Contains(svc.Image, "@sha256:") || pr.Services[name] != svc {
			t.Fatalf("service %s: production runs %+v, staging verified %+v", name, pr.Services[name], svc)
		}
	}
	logs, _, _ := p.run("logs", p.lastExecution())
	if !strings.Contains(logs, "promoting to production the images staging verified for "+commit[:7]) {
		t.Fatalf("the production deploy does not say it promotes staging's images:\n%s", logs)
	}
}

// revision is a revision as `cutover history -o json` shows it.
type revision struct {
	ID, Environment, Source string
	Services                map[string]struct{ Image, ConfigHash string } `json:"services"`
}

// newestRevision is env's newest revision.
func (p *pipeRepo) newestRevision(env string) revision {
	p.t.Helper()
	out, _, err := p.run("history", env, "-o", "json")
	var h struct{ Revisions []revision }
	if err != nil || json.Unmarshal([]byte(out), &h) != nil || len(h.Revisions) == 0 {
		p.t.Fatalf("history %s: %v\n%s", env, err, out)
	}
	return h.Revisions[0]
}

// lastExecution is the ID of the newest execution.
func (p *pipeRepo) lastExecution() string {
	p.t.Helper()
	out, _, err := p.run("executions", "-o", "json")
	var xs []pipeExecution
	if err != nil || json.Unmarshal([]byte(out), &xs) != nil || len(xs) == 0 {
		p.t.Fatalf("executions: %v\n%s", err, out)
	}
	return xs[0].ID
}

package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// statusServer stands in for GitHub's commit status API (there is no
// GitHub here): it records what it is sent and checks the token.
type statusServer struct {
	*httptest.Server
	mu   sync.Mutex
	got  []map[string]string // path, auth, state, description, context, target_url
	fail int                 // answer 502 to this many requests first
}

func newStatusServer(t *testing.T) *statusServer {
	s := &statusServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var st map[string]string
		_ = json.Unmarshal(body, &st)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail > 0 {
			s.fail--
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		st["path"], st["auth"], st["method"] = r.URL.Path, r.Header.Get("Authorization"), r.Method
		s.got = append(s.got, st)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":1,"state":"`+st["state"]+`"}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *statusServer) requests() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]string(nil), s.got...)
}

const statusProject = `version: 1
project: %s
services:
  web: { image: "example.invalid/web:1", port: 8080 }
environments:
  staging: { branch: develop, listen: { port: 18181 } }
pipeline:
  commit_status: { repository: acme/shop, api_url: %q, target_url: "https://ci.example.com/executions/" }
  stages:
    - name: build
      actions:
        - { name: compile, kind: command, commands: [%q] }
`

func statusEngine(t *testing.T) *Engine {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Engine{Store: st, Home: t.TempDir(), Poll: 20 * time.Millisecond,
		Getenv: func(k string) string {
			if k == DefaultStatusTokenEnv {
				return "ghp_statusToken123"
			}
			return ""
		}}
}

// An execution reports pending when it starts and success or failure when
// it ends, on its commit, with cutover's token; a 502 is retried; the token
// never reaches a command or the log.
func TestCommitStatusIsReportedOnTheCommit(t *testing.T) {
	for _, tc := range []struct {
		name, command, final, desc string
	}{
		{"success", `echo "token=[$CUTOVER_GITHUB_TOKEN]"`, "success", "all stages succeeded"},
		{"failure", `echo broken; exit 3`, "failure", "failed: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newStatusServer(t)
			srv.fail = 1
			project := "cs-" + tc.name
			repo, _ := testenv.GitRepo(t, "develop", map[string]string{"cutover.yaml": fmt.Sprintf(statusProject, project, srv.URL+"/api/v3/", tc.command)})
			commit := testenv.Git(t, repo, "rev-parse", "HEAD")
			e := statusEngine(t)
			x, err := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "develop", Commit: commit})
			if err != nil {
				t.Fatal(err)
			}
			got := srv.requests()
			if len(got) != 2 {
				t.Fatalf("statuses sent: %+v, want pending then %s", got, tc.final)
			}
			for i, want := range []string{"pending", tc.final} {
				r := got[i]
				if r["method"] != http.MethodPost || r["path"] != "/api/v3/repos/acme/shop/statuses/"+commit || r["auth"] != "Bearer ghp_statusToken123" ||
					r["state"] != want || r["context"] != "cutover" || r["target_url"] != "https://ci.example.com/executions/"+x.ID {
					t.Errorf("status %d: %+v, want %s on the commit with the token", i, r, want)
				}
			}
			if !strings.HasPrefix(got[1]["description"], tc.desc) {
				t.Errorf("final description %q, want %q…", got[1]["description"], tc.desc)
			}
			logs, _ := e.Store.ListLogs(context.Background(), x.ID, "", 0, 10000)
			all := fmt.Sprint(logs, string(x.Stages), string(x.Variables))
			if strings.Contains(all, "ghp_statusToken123") {
				t.Fatal("the status token reached the execution's log or state")
			}
			if tc.name == "success" && !strings.Contains(all, "token=[]") {
				t.Errorf("the command's output is not in the log: %s", all)
			}
		})
	}
}

// Without the token in cutover's environment nothing is sent, the run goes
// on, and the log says why.
func TestCommitStatusWithoutTokenSaysSo(t *testing.T) {
	srv := newStatusServer(t)
	repo, _ := testenv.GitRepo(t, "develop", map[string]string{"cutover.yaml": fmt.Sprintf(statusProject, "cs-notoken", srv.URL, "true")})
	e := statusEngine(t)
	e.Getenv = func(string) string { return "" }
	x, err := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: "cs-notoken", Repo: repo, Branch: "develop", Commit: testenv.Git(t, repo, "rev-parse", "HEAD")})
	if err != nil || x.Status != "succeeded" {
		t.Fatalf("%v %s %s", err, x.Status, x.Error)
	}
	if n := len(srv.requests()); n != 0 {
		t.Fatalf("%d statuses sent without a token", n)
	}
	logs, _ := e.Store.ListLogs(context.Background(), x.ID, "", 0, 10000)
	if !strings.Contains(fmt.Sprint(logs), "CUTOVER_GITHUB_TOKEN is not set") {
		t.Errorf("the log does not say why no status is reported: %v", logs)
	}
}

// A pull request reports its status (branch protection needs it) through
// its base branch's definition: a pull request that points commit_status
// at its own server gets nothing, and its commands never see the token.
func TestPullRequestCannotRedirectTheCommitStatus(t *testing.T) {
	testenv.RequireDocker(t)
	trusted, attacker := newStatusServer(t), newStatusServer(t)
	project := "cs-pr"
	repo, _ := testenv.GitRepo(t, "main", map[string]string{"cutover.yaml": fmt.Sprintf(statusProject, project, trusted.URL, "true")})
	testenv.Git(t, repo, "checkout", "-qb", "evil")
	testenv.Replace(t, filepath.Join(repo, "cutover.yaml"), trusted.URL, attacker.URL, `commands: ["true"]`, `commands: ["echo token=$CUTOVER_GITHUB_TOKEN"]`)
	testenv.Git(t, repo, "commit", "-qam", "report elsewhere")
	head := testenv.Git(t, repo, "rev-parse", "HEAD")
	testenv.Git(t, repo, "checkout", "-q", "main")

	e := statusEngine(t)
	e.Runtime = dockerRuntime(t)
	x, err := e.Run(context.Background(), Trigger{Kind: TriggerPullRequest, Project: project, Repo: repo, Branch: "evil", Base: "main", Commit: head, PR: 9})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(attacker.requests()); n != 0 {
		t.Fatalf("the pull request's own commit_status received %d statuses", n)
	}
	got := trusted.requests()
	if len(got) != 2 || got[0]["state"] != "pending" || got[1]["path"] != "/repos/acme/shop/statuses/"+head {
		t.Fatalf("statuses on the trusted API: %+v (execution %s: %s)", got, x.Status, x.Error)
	}
}

func dockerRuntime(t *testing.T) *docker.Runtime {
	t.Helper()
	rt, err := docker.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// A scheduled execution's images carry seed 003's nightly-<date> tag
// besides the commit and branch; a push's and a pull request's do not.
func TestScheduledImagesAreTaggedNightly(t *testing.T) {
	created := time.Date(2026, 12, 3, 23, 59, 0, 0, time.FixedZone("CET", 3600))
	commit := strings.Repeat("ab", 20)
	for _, tc := range []struct {
		kind      string
		untrusted bool
		pr        string
		want      string
	}{
		{TriggerSchedule, false, "", commit + " abababa latest main nightly-20261203"},
		{TriggerPush, false, "", commit + " abababa latest main"},
		// An untrusted run's tags are never a trusted run's: its author can
		// choose a commit whose short form is a trusted commit's.
		{TriggerPullRequest, true, "4", "pr-4-" + commit + " pr-4-abababa pr-4"},
		{TriggerPush, true, "", "untrusted-" + commit + " untrusted-abababa"}, // a branch outside trusted_branches
	} {
		r := &run{kind: tc.kind, untrusted: tc.untrusted, exec: store.Execution{CreatedAt: created},
			vars: map[string]string{"CUTOVER_COMMIT": commit, "CUTOVER_BRANCH": "main", "CUTOVER_PR": tc.pr}}
		if got := strings.Join(r.imageTags(), " "); got != tc.want {
			t.Errorf("%s: tags %q, want %q", tc.kind, got, tc.want)
		}
	}
}

package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/testenv"
)

const repoURLProject = `version: 1
project: %s
services:
  web: { image: "example.invalid/web:1", port: 8080 }
environments:
  staging: { branch: develop, listen: { port: 18182 } }
pipeline:
  stages:
    - name: build
      actions:
        - { name: compile, kind: command, commands: ["cat .git/FETCH_HEAD; git config --list"] }
`

// gitHTTPServer serves the repository at dir over smart HTTP on 127.0.0.1
// (git http-backend), to the user and password given only.
func gitHTTPServer(t *testing.T, dir, user, password string) string {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path (git is needed): %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(dir), "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(dir)
}

// A repository URL with credentials (cutover run --repo
// https://user:TOKEN@host/...) is used to check the commit out, but the
// credentials reach neither the execution stored (its recorded trigger,
// which GET /v1/executions/{id} serves) nor its log or error.
func TestSecretRepoURLCredentialsNeverStored(t *testing.T) {
	const token = "s3cr3t-git-tok3n"
	project := "repourl"
	dir, commit := testenv.GitRepo(t, "develop", map[string]string{"cutover.yaml": fmt.Sprintf(repoURLProject, project)})
	base := gitHTTPServer(t, dir, "deploy-bot", token)
	repo := strings.Replace(base, "http://", "http://deploy-bot:"+token+"@", 1)
	e := statusEngine(t)
	x, err := e.Run(context.Background(), Trigger{Kind: TriggerManual, Project: project, Repo: repo, Branch: "develop", Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != "succeeded" {
		t.Fatalf("execution %s: %s", x.Status, x.Error)
	}
	stored, err := e.Store.GetExecution(context.Background(), x.ID)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := e.Store.ListExecutions(context.Background(), project, 10)
	logs, _ := e.Store.ListLogs(context.Background(), x.ID, "", 0, 10000)
	all := fmt.Sprint(stored.Error, string(stored.Variables), string(stored.Stages), list, logs)
	if strings.Contains(all, token) {
		t.Fatalf("the repository's credentials are stored with the execution: %s", all)
	}
	// A retry cannot use the recorded address, and says so without the token.
	if _, err := RetryTrigger(stored, ""); err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "credentials are not recorded") {
		t.Fatalf("RetryTrigger of a run from a URL with credentials: %v", err)
	}
}

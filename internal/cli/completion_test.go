package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/store"
)

// `cutover logs ENV SERVICE | EXECUTION` completes its first argument with
// the environments and the executions, and its second, after an
// environment, with that environment's services that have logs (on ecs not
// a static one, which S3 and CloudFront serve); after an execution, or an
// argument that is no environment, nothing.
func TestCompletionOfLogsEnvService(t *testing.T) {
	dir, home := staticFrontendProject(t), t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(home, "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	x := store.Execution{ID: "x-20261203-100000-aaaa", Project: "shop", Pipeline: "main", Trigger: "push", Branch: "develop",
		Commit: strings.Repeat("a", 40), Status: store.ExecutionSucceeded}
	if err := st.CreateExecution(context.Background(), x); err != nil {
		t.Fatal(err)
	}
	st.Close()

	complete := func(args ...string) []string {
		t.Helper()
		code, out, errs := run(t, dir, append([]string{"__complete", "--home", home}, args...)...)
		if code != 0 {
			t.Fatalf("__complete %q: exit %d: %s", args, code, errs)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if last := lines[len(lines)-1]; last != ":4" {
			t.Errorf("__complete %q: directive %s, want :4 (no file names)", args, last)
		}
		return lines[:len(lines)-1]
	}
	same := func(what string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s:\n got %q\nwant %q", what, got, want)
		}
	}
	same("logs <TAB>", complete("logs", ""),
		"x-20261203-100000-aaaa\tdevelop aaaaaaa succeeded", "production\tecs, branch main", "staging\tlocal, branch develop")
	same("logs staging <TAB>", complete("logs", "staging", ""),
		"backend\tport 3001, route /api", "frontend\tport 80, route /", "worker\tport 9000, route /worker")
	same("logs production <TAB> (ecs: no static service)", complete("logs", "production", ""),
		"backend\tport 3001, route /api", "worker\tport 9000, route /worker")
	same("logs EXECUTION <TAB>", complete("logs", "x-20261203-100000-aaaa", ""))
	same("logs NOENV <TAB>", complete("logs", "qa", ""))
	same("logs staging backend <TAB>", complete("logs", "staging", "backend", ""))
	// The other commands keep their completions.
	same("deploy <TAB>", complete("deploy", ""), "production\tecs, branch main", "staging\tlocal, branch develop")
	same("deploy staging <TAB>", complete("deploy", "staging", ""))
	// A secret's NAME is one cutover.yaml names; a token's NAME is not.
	same("secrets set staging <TAB>", complete("secrets", "set", "staging", ""), "DB_PASSWORD\tsecret of backend, worker", "QUEUE_TOKEN\tsecret of worker")
	same("secrets unset <TAB>", complete("secrets", "unset", ""), "production\tecs, branch main", "staging\tlocal, branch develop")
	same("token create <TAB>", complete("token", "create", ""))
}

// staticFrontendProject writes a cutover.yaml whose frontend is static on
// AWS (S3 and CloudFront), with a local staging and an ecs production, and
// returns its directory.
func staticFrontendProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	y := `version: 1
project: shop
services:
  backend: { image: "shop/backend:1", port: 3001, route: { path_prefix: /api }, secrets: [DB_PASSWORD] }
  worker: { image: "shop/worker:1", port: 9000, route: { path_prefix: /worker }, secrets: [QUEUE_TOKEN, DB_PASSWORD] }
  frontend:
    build: { context: frontend, commands: ["make dist"] }
    port: 80
    route: { path_prefix: / }
    static: { dir: dist, spa: true }
environments:
  staging: { branch: develop, listen: { port: 18080 } }
  production:
    branch: main
    platform: ecs
    ecs: { region: eu-west-1, stack: shop-app-production }
`
	if err := os.Mkdir(filepath.Join(dir, "frontend"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "frontend", "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, dir, "validate"); code != 0 {
		t.Fatalf("the test's cutover.yaml is invalid: %s", errs)
	}
	return dir
}

// `cutover logs ENV SERVICE` of a static service on ecs says there are no
// task logs to read, before asking AWS anything.
func TestLogsOfAStaticServiceOnECS(t *testing.T) {
	dir := staticFrontendProject(t)
	code, _, errs := run(t, dir, "logs", "production", "frontend", "--home", t.TempDir())
	if code == 0 || !strings.Contains(errs, "service frontend is static on production: S3 and CloudFront serve its files, and no task writes logs") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

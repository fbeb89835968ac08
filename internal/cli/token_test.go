package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/store"
)

func TestTokenCommandsStoreOnlyAHashAndAuditEachChange(t *testing.T) {
	home := t.TempDir()
	t.Setenv("CUTOVER_HOME", home)
	code, out, errb := run(t, "", "token", "create", "ci", "--role", "deployer", "--output", "json")
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errb)
	}
	var created struct{ Name, Role, Token string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Name != "ci" || created.Role != "deployer" || !strings.HasPrefix(created.Token, auth.TokenPrefix) {
		t.Fatalf("token create printed %q (%v)", out, err)
	}
	// Bad input: a clear error and nothing changed.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "create", "ci", "--role", "viewer"}, `"ci" already exists`},
		{[]string{"token", "create", "other", "--role", "root"}, `"root" is not a role (use one of viewer, deployer, approver, admin)`},
		{[]string{"token", "create", "other"}, "--role is required"},
		{[]string{"token", "create", "bad name", "--role", "viewer"}, `token name "bad name"`},
		{[]string{"token", "revoke", "nobody"}, "cutover: there is no live token named \"nobody\" (`cutover token list` lists them)\n"},
	} {
		code, _, errb := run(t, "", c.args...)
		if code == 0 || !strings.Contains(errb, c.want) || strings.Count(strings.TrimSpace(errb), "\n") > 0 || strings.Contains(errb, "store:") {
			t.Fatalf("cutover %s: %d %q, want one line with %q", strings.Join(c.args, " "), code, errb, c.want)
		}
	}
	_, out, _ = run(t, "", "token", "list", "--output", "json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0]["name"] != "ci" || list[0]["role"] != "deployer" {
		t.Fatalf("token list: %s (%v)", out, err)
	}
	if strings.Contains(out, created.Token) || strings.Contains(out, auth.Hash(created.Token)) {
		t.Fatalf("token list shows the token or its hash: %s", out)
	}
	// The database holds the hash, never the token.
	var db []byte
	for _, f := range []string{"cutover.db", "cutover.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(home, f))
		db = append(db, b...)
	}
	if bytes.Contains(db, []byte(created.Token)) || !bytes.Contains(db, []byte(auth.Hash(created.Token))) {
		t.Fatal("the store does not hold just the token's hash")
	}
	if code, _, errb := run(t, "", "token", "revoke", "ci"); code != 0 {
		t.Fatalf("token revoke: %s", errb)
	}
	if _, out, _ = run(t, "", "token", "list", "--output", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("after the revoke: %s", out)
	}

	_, out, _ = run(t, "", "audit", "--output", "json", "--since", "1h")
	var entries []store.AuditEntry
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		if e.Actor != auth.LocalUser().Name || e.Via != "cli" || e.Role != "admin" {
			t.Fatalf("entry not attributed to the OS user through the CLI: %+v", e)
		}
		got = append(got, e.Action+" "+e.Target+" "+strings.SplitN(e.Outcome, ":", 2)[0])
	}
	want := []string{
		"token create ci deployer ok",
		"token create ci viewer a token named \"ci\" already exists (revoke it first, or choose another name)",
		"token create other root --role",
		"token create bad name viewer token name \"bad name\"",
		"token revoke nobody there is no live token named \"nobody\" (`cutover token list` lists them)",
		"token revoke ci ok",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if code, _, errb := run(t, "", "audit", "--since", "yesterday"); code == 0 || !strings.Contains(errb, "--since") {
		t.Fatalf("audit --since yesterday: %d %s", code, errb)
	}
}

const approveProject = `version: 1
project: cli-approve
services:
  hello: { image: "127.0.0.1:5999/hello:1", port: 8080 }
environments:
  production:
    branch: main
    listen: { port: 18299 }
    approval: { required: true%s }
pipeline:
  stages:
    - name: gate
      branches: [main]
      actions: [{ name: approve, kind: approval, environment: production, timeout: 1m }]
`

// waitingExecution records an execution waiting at production's approval,
// as the engine leaves it.
func waitingExecution(t *testing.T, home, id string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(home, "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateExecution(ctx, store.Execution{ID: id, Project: "cli-approve", Pipeline: "main", Trigger: "push", Branch: "main", Commit: strings.Repeat("a", 40), Status: store.ExecutionWaiting}); err != nil {
		t.Fatal(err)
	}
	if err := st.RequestApproval(ctx, store.Approval{Execution: id, Stage: "gate", Action: "approve", Expires: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
}

func TestCLIApprovalIsTheOSUserUnderTheSameRules(t *testing.T) {
	home := t.TempDir()
	t.Setenv("CUTOVER_HOME", home)
	dir := t.TempDir()
	me := auth.LocalUser().Name

	// approvers names someone else: the machine's owner is refused too.
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(strings.Replace(approveProject, "%s", ", approvers: [release-manager]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitingExecution(t, home, "x-cli-1")
	code, _, errb := run(t, dir, "approve", "x-cli-1")
	if code == 0 || !strings.Contains(errb, "release-manager") || !strings.Contains(errb, me+" is not allowed") {
		t.Fatalf("approve by a user not in approvers: %d %s", code, errb)
	}

	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(strings.Replace(approveProject, "%s", ", approvers: ["+me+"]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errb := run(t, dir, "approve", "x-cli-1", "--comment", "ok", "--output", "json")
	var a store.Approval
	if code != 0 || json.Unmarshal([]byte(out), &a) != nil || a.DecidedBy != me || a.Status != store.ApprovalApproved {
		t.Fatalf("approve: %d %s %s", code, out, errb)
	}
	_, out, _ = run(t, dir, "audit", "--output", "json")
	var entries []store.AuditEntry
	if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) != 2 {
		t.Fatalf("audit: %s (%v)", out, err)
	}
	if e := entries[0]; e.Action != "approve" || e.Actor != me || e.Target != "x-cli-1" || !strings.Contains(e.Outcome, "not allowed") {
		t.Fatalf("refused approval recorded as %+v", e)
	}
	if e := entries[1]; e.Action != "approve" || e.Target != "x-cli-1 --comment=ok" || e.Outcome != "ok" {
		t.Fatalf("approval recorded as %+v", e)
	}
}

func TestServeRefusesAPublicAddressWithoutTLS(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--addr", "0.0.0.0:8790"},
		{"serve", "--addr", ":8790"},
		{"serve", "--addr", "0.0.0.0:8790", "--tls-cert", "cert.pem"},
	} {
		code, _, errb := run(t, t.TempDir(), args...)
		if code == 0 || !strings.Contains(errb, "--tls-") || strings.Count(strings.TrimSpace(errb), "\n") > 0 {
			t.Fatalf("cutover %s: %d %q, want a one-line refusal naming the TLS flags", strings.Join(args, " "), code, errb)
		}
	}
}

// Commands that change what serves traffic are audited too (up, down,
// prune, proxy stop and restart), and a long one (a deployment) records
// that it starts before it acts, so one killed half way leaves who ran it
// on record; its outcome follows when it ends.
func TestCommandsThatChangeTrafficAreAuditedAndLongOnesWhenTheyStart(t *testing.T) {
	home := t.TempDir()
	t.Setenv("CUTOVER_HOME", home)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(strings.Replace(approveProject, "%s", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errb := run(t, dir, "deploy", "nosuch"); code == 0 || !strings.Contains(errb, "nosuch") {
		t.Fatalf("deploy of an unknown environment: %d %s", code, errb)
	}
	if code, _, errb := run(t, dir, "proxy", "stop", "--grace", "1s"); code != 0 {
		t.Fatalf("proxy stop with no proxy running: %d %s", code, errb)
	}
	_, out, _ := run(t, dir, "audit", "--output", "json")
	var entries []store.AuditEntry
	if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) != 3 {
		t.Fatalf("audit: %s (%v), want 3 entries", out, err)
	}
	me := auth.LocalUser().Name
	if e := entries[0]; e.Action != "deploy" || e.Actor != me || e.Target != "nosuch" || e.Outcome != auth.OutcomeStarted {
		t.Errorf("first entry %+v, want the deployment's start", e)
	}
	if e := entries[1]; e.Action != "deploy" || e.Target != "nosuch" || !strings.Contains(e.Outcome, "nosuch") {
		t.Errorf("second entry %+v, want the deployment's failure", e)
	}
	if e := entries[2]; e.Action != "proxy stop" || e.Actor != me || e.Target != "--grace=1s" || e.Outcome != auth.OutcomeOK {
		t.Errorf("third entry %+v, want the proxy stop", e)
	}
}

// A home's store may hold another project's executions (two projects'
// cutover.yaml, one CUTOVER_HOME): from this project, every command that
// takes an execution ID answers one of them as a missing one, shows none of
// its log or commit, and changes nothing. Before, logs, executions ID and
// retry (which ran the other project's commit under this one's pipeline)
// took it.
func TestAnotherProjectsExecutionIsAsMissing(t *testing.T) {
	inSmallProject(t)
	home := os.Getenv("CUTOVER_HOME")
	waitingExecution(t, home, "x-other")
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(home, "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.AppendLog(ctx, "x-other", "build", []string{"the other project's log line"}); err != nil {
		t.Fatal(err)
	}
	want := "cutover: there is no execution x-other (`cutover executions` lists them)\n"
	for _, cmd := range []string{"logs", "cancel", "approve", "reject", "retry", "executions"} {
		code, out, errOut := run(t, "", cmd, "x-other")
		if code != 1 || out != "" || errOut != want {
			t.Errorf("cutover %s x-other: exit %d stdout %q stderr %q, want %q", cmd, code, out, errOut, want)
		}
	}
	x, err := st.GetExecution(ctx, "x-other")
	if err != nil || x.Status != store.ExecutionWaiting {
		t.Fatalf("the other project's execution: %s %v, want it still waiting", x.Status, err)
	}
	if xs, err := st.ListExecutions(ctx, "shop", 10); err != nil || len(xs) != 0 {
		t.Fatalf("this project's executions: %v %v, want none (retry ran nothing)", xs, err)
	}
}

// An execution's log and error hold what its commands wrote, a pull
// request's included: `cutover logs` and `cutover executions` give the
// terminal its colours and none of its other escapes (an OSC 52 clipboard
// write, a cursor move up a row, backspaces over what was printed, a
// hyperlink hiding its address); --output json keeps the line as stored.
func TestLogsGiveTheTerminalOnlyColours(t *testing.T) {
	inSmallProject(t)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(os.Getenv("CUTOVER_HOME"), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateExecution(ctx, store.Execution{ID: "x-pr", Project: "shop", Pipeline: "main", Trigger: "pull_request", Branch: "feature", Commit: strings.Repeat("b", 40), Status: store.ExecutionFailed,
		Error: "test: failed (last output: \x1b[31mFAIL\x1b[0m\x1b]8;;http://evil.test\x1b\\details\x1b]8;;\x1b\\)"}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"executions"}, {"executions", "x-pr"}} {
		code, out, errOut := run(t, "", args...)
		if code != 0 || !strings.Contains(out, "test: failed (last output: \x1b[31mFAIL\x1b[0mdetails)") || strings.Contains(out, "\x1b]") {
			t.Fatalf("cutover %s: exit %d %q %q", strings.Join(args, " "), code, out, errOut)
		}
	}
	line := "\x1b[31mFAIL\x1b[0m tests\x1b]52;c;cm0gLXJmIH4K\x07\x1bM\b\b\b\bok"
	if err := st.AppendLog(ctx, "x-pr", "test", []string{line}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "logs", "x-pr")
	if code != 0 || !strings.HasSuffix(out, " test         \x1b[31mFAIL\x1b[0m testsok\n") {
		t.Fatalf("logs: exit %d %q %q", code, out, errOut)
	}
	code, out, _ = run(t, "", "logs", "x-pr", "--output", "json")
	var l store.LogLine
	if code != 0 || json.Unmarshal([]byte(out), &l) != nil || l.Line != line {
		t.Fatalf("logs --output json: exit %d %q", code, out)
	}
}

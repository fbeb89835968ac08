package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// withStdin runs fn with standard input reading data (not a terminal).
func withStdin(t *testing.T, data string, fn func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	fn()
}

// A secret is set from standard input, listed by name only, recorded in
// the audit log by name only, and removed; its value shows in no output.
func TestSecretsSetListUnsetNeverShowTheValue(t *testing.T) {
	dir := t.TempDir()
	home := t.TempDir()
	t.Setenv("CUTOVER_HOME", home)
	y := `version: 1
project: shop
services:
  web: { image: "shop/web:1", port: 80, secrets: [DB_PASSWORD] }
environments:
  staging: { branch: develop, listen: { port: 18080 } }
  production:
    branch: main
    platform: ecs
    ecs: { region: eu-west-1, stack: shop-app-production }
`
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	const value = "hunter2-b7f3"
	var outputs []string
	check := func(wantCode int, stdin string, args ...string) (string, string) {
		t.Helper()
		var code int
		var out, errs string
		withStdin(t, stdin, func() { code, out, errs = run(t, dir, args...) })
		outputs = append(outputs, out, errs)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, out, errs)
		}
		return out, errs
	}

	out, _ := check(0, value+"\n", "secrets", "set", "staging", "DB_PASSWORD")
	if out != "set staging's secret DB_PASSWORD (given to web from the next deployment on)\n" {
		t.Errorf("set: %q", out)
	}
	b, err := os.ReadFile(filepath.Join(home, "secrets", "shop", "staging.json"))
	if err != nil || !strings.Contains(string(b), `"DB_PASSWORD": "`+value+`"`) {
		t.Fatalf("the stored value (one trailing newline dropped): %s, %v", b, err)
	}
	out, _ = check(0, "", "secrets", "list", "staging", "-o", "json")
	var list []struct {
		Name     string
		Set      bool
		Services []string
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].Name != "DB_PASSWORD" || !list[0].Set || list[0].Services[0] != "web" {
		t.Fatalf("secrets list: %s (%v)", out, err)
	}

	// The value is never an argument: it would be in shell history, ps and the audit log.
	_, errs := check(1, "", "secrets", "set", "staging", "DB_PASSWORD", value)
	if !strings.Contains(errs, "ENV NAME") {
		t.Errorf("a value given as an argument: %s", errs)
	}
	_, errs = check(1, "", "secrets", "set", "production", "DB_PASSWORD")
	if !strings.Contains(errs, "platform ecs") || !strings.Contains(errs, "--name /cutover/shop/production/DB_PASSWORD ") {
		t.Errorf("set on an ecs environment: %s", errs)
	}
	_, errs = check(1, "x", "secrets", "set", "nosuch", "DB_PASSWORD")
	if !strings.Contains(errs, `no environment named "nosuch"`) {
		t.Errorf("set on an unknown environment: %s", errs)
	}
	_, errs = check(1, "x", "secrets", "set", "staging", "../DB")
	if !strings.Contains(errs, "not a variable name") {
		t.Errorf("a name with ..: %s", errs)
	}
	_, errs = check(1, "\n", "secrets", "set", "staging", "DB_PASSWORD")
	if !strings.Contains(errs, "the value is empty") {
		t.Errorf("an empty value: %s", errs)
	}

	out, _ = check(0, "", "audit")
	if !strings.Contains(out, "secret set") || !strings.Contains(out, "staging DB_PASSWORD") {
		t.Errorf("the audit log does not record the secret set by name:\n%s", out)
	}
	out, _ = check(0, "", "secrets", "unset", "staging", "DB_PASSWORD")
	if !strings.Contains(out, "removed staging's secret DB_PASSWORD: running tasks keep it until they are replaced, and the next deployment of staging fails") {
		t.Errorf("unset: %s", out)
	}
	out, _ = check(0, "", "secrets", "list", "staging")
	if !strings.Contains(out, "DB_PASSWORD") || !strings.Contains(out, "no ") {
		t.Errorf("list after unset: %s", out)
	}
	// status says what the next deployment would fail on.
	out, _ = check(0, "", "status", "staging")
	if !strings.Contains(out, "secrets without a value: DB_PASSWORD: the next deployment fails until each is set (cutover secrets set staging NAME)") {
		t.Errorf("status after unset: %s", out)
	}
	for _, o := range outputs {
		if strings.Contains(o, value) {
			t.Fatalf("an output holds the value: %s", o)
		}
	}
}

// The mistakes a newcomer makes with secrets set put the value where the
// command line goes: NAME=VALUE, the value as a third argument, or ENV
// left out (NAME VALUE). None is quoted in an error or recorded in the
// audit log, and each error says how to give the value.
func TestSecretsSetMistakesNeverShowOrRecordTheValue(t *testing.T) {
	dir := t.TempDir()
	home := t.TempDir()
	t.Setenv("CUTOVER_HOME", home)
	y := `version: 1
project: shop
services:
  web: { image: "shop/web:1", port: 80, secrets: [DB_PASSWORD] }
environments:
  staging: { branch: develop, listen: { port: 18080 } }
`
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	const value = "hunter2x"
	var outputs []string
	check := func(wantCode int, stdin string, want string, args ...string) string {
		t.Helper()
		var code int
		var out, errs string
		withStdin(t, stdin, func() { code, out, errs = run(t, dir, args...) })
		outputs = append(outputs, out, errs)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, out, errs)
		}
		if !strings.Contains(out+errs, want) {
			t.Errorf("%v: want %q in\nstdout: %s\nstderr: %s", args, want, out, errs)
		}
		return out + errs
	}
	check(1, value, `NAME "DB_PASSWORD=..." is not a variable name (NAME=VALUE is not taken: the value is read from standard input; if that was the real value, it is in the shell's history now: change it): printf %s "$VALUE" | cutover secrets set staging DB_PASSWORD`,
		"secrets", "set", "staging", "DB_PASSWORD="+value)
	check(1, "", `NAME "DB_PASSWORD=..." is not a variable name`, "secrets", "unset", "staging", "DB_PASSWORD="+value)
	check(1, value, `ENV "DB_PASSWORD" is not an environment name`, "secrets", "set", "DB_PASSWORD", value)
	check(1, "", "takes the value on standard input, never as an argument", "secrets", "set", "staging", "DB_PASSWORD", value)
	check(1, value, "NAME (not shown) is not a variable name", "secrets", "set", "staging", value+" !")
	check(1, value, `no environment named "stagng"`, "secrets", "set", "stagng", "DB_PASSWORD")
	check(1, "", "needs ENV NAME (got 1 argument)", "secrets", "set", "staging")

	// A name that differs only in case is set, but the output names the one cutover.yaml gives a service.
	check(0, value, "no service names it in cutover.yaml, which names DB_PASSWORD: names are case-sensitive", "secrets", "set", "staging", "db_password")
	check(0, "", "removed staging's secret db_password", "secrets", "unset", "staging", "db_password")
	// The deploy's error names the one command to run.
	check(1, "", "set it with cutover secrets set staging DB_PASSWORD", "up", "staging")

	check(0, "", "secret set", "audit")
	for _, o := range outputs {
		if strings.Contains(o, value) {
			t.Fatalf("an output holds the value: %s", o)
		}
	}
	b, err := os.ReadFile(filepath.Join(home, "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), value) {
		t.Fatal("the store (its audit log) holds the value")
	}
}

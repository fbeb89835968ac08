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
	if !strings.Contains(errs, "platform ecs") || !strings.Contains(errs, "/cutover/shop/production/NAME") {
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
	if !strings.Contains(out, "removed staging's secret DB_PASSWORD: the next deployment of staging fails") {
		t.Errorf("unset: %s", out)
	}
	out, _ = check(0, "", "secrets", "list", "staging")
	if !strings.Contains(out, "DB_PASSWORD") || !strings.Contains(out, "no ") {
		t.Errorf("list after unset: %s", out)
	}
	for _, o := range outputs {
		if strings.Contains(o, value) {
			t.Fatalf("an output holds the value: %s", o)
		}
	}
}

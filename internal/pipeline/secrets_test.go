package pipeline

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/mask"
	"github.com/cutoverdev/cutover/internal/testenv"
)

func TestSecretsFromFileAndEnvAreMasked(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secrets.env"), []byte("# test\nDB_PASSWORD=hunter22\nHOOK=\"https://hooks.example/T0/abc\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{File: filepath.Join(dir, "cutover.yaml")}
	p := &config.Pipeline{Secrets: &config.Secrets{File: "secrets.env", Names: []string{"DB_PASSWORD", "HOOK", "API_TOKEN"}}}
	env := map[string]string{"API_TOKEN": "tok-123456"}
	s, err := LoadSecrets(cfg, p, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	line := "connecting with hunter22 to https://hooks.example/T0/abc using tok-123456"
	if got := s.Mask(line); got != "connecting with *** to *** using ***" {
		t.Fatalf("masked %q", got)
	}
	if !strings.Contains(strings.Join(s.Env(), " "), "API_TOKEN=tok-123456") {
		t.Fatal("secret not in the actions' environment")
	}
	delete(env, "API_TOKEN")
	_, err = LoadSecrets(cfg, p, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "API_TOKEN not set") {
		t.Fatalf("want missing secret named, got %v", err)
	}
}

func TestSecretsFileWithABadLineDoesNotEchoIt(t *testing.T) {
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "s.env"), []byte("supersecretvalue\n"), 0o600)
	cfg := &config.Config{File: filepath.Join(dir, "cutover.yaml")}
	_, err := LoadSecrets(cfg, &config.Pipeline{Secrets: &config.Secrets{File: "s.env"}}, os.Getenv)
	if err == nil || strings.Contains(err.Error(), "supersecretvalue") || !strings.Contains(err.Error(), "s.env:1") {
		t.Fatalf("got %v", err)
	}
}

// secretForms are the encodings of v an attacker would print to get it
// past a plain-text mask.
func secretForms(v string) map[string]string {
	forms := map[string]string{"plain": v}
	for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64 raw": base64.RawStdEncoding,
		"base64url": base64.URLEncoding, "base64url raw": base64.RawURLEncoding} {
		forms[name] = enc.EncodeToString([]byte(v))
		forms[name+" of echo"] = enc.EncodeToString([]byte(v + "\n"))
		forms[name+" after a prefix"] = strings.TrimRight(enc.EncodeToString([]byte("x=" + v + "&y=1"))[4:12], "=")
	}
	forms["query escaped"] = url.QueryEscape(v)
	forms["path escaped"] = url.PathEscape(v)
	for i, l := range strings.Split(v, "\n") {
		if len(l) >= mask.MinMasked {
			forms[fmt.Sprintf("line %d", i+1)] = l
		}
	}
	return forms
}

func leaks(text string, values ...string) []string {
	var found []string
	for _, v := range values {
		for name, f := range secretForms(v) {
			if strings.Contains(text, f) {
				found = append(found, fmt.Sprintf("%s form %q", name, f))
			}
		}
	}
	return found
}

func TestMaskCoversLinesEncodingsAndJSON(t *testing.T) {
	pem := "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf\n9Cnzj4p4WGeKLs1Pt8Qu\n-----END KEY-----"
	tok := "tok/+?&= 12345"
	s := &Secrets{values: map[string]string{"PEM": pem, "TOK": tok}}
	s.masker = mask.New(s.values)
	var text strings.Builder
	for _, v := range []string{pem, tok} {
		for name, f := range secretForms(v) {
			if !strings.HasSuffix(name, "after a prefix") {
				text.WriteString("<" + f + ">\n")
			}
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			for _, prefix := range []string{"x=", "ab:", "k"} {
				text.WriteString(enc.EncodeToString([]byte(prefix+v+"&y=1")) + "\n")
			}
		}
	}
	masked := s.Mask(text.String())
	if l := leaks(masked, pem, tok); len(l) > 0 {
		t.Fatalf("leaked %v in:\n%s", l, masked)
	}
	doc, _ := json.Marshal(map[string]any{"outputs": map[string]string{"K": tok}, tok: []any{pem, 3, 12345678901234567}})
	got := string(s.MaskJSON(doc))
	if l := leaks(got, pem, tok); len(l) > 0 || !strings.Contains(got, "12345678901234567") {
		t.Fatalf("MaskJSON leaked %v or lost a number: %s", l, got)
	}
	var nilSecrets *Secrets
	if nilSecrets.Mask("x") != "x" || string(nilSecrets.MaskJSON([]byte(`{"a":1}`))) != `{"a":1}` {
		t.Fatal("nil Secrets must mask nothing")
	}
}

// An attack on the masking through every channel a command has: plain,
// base64 and URL-encoded output, a multi-line secret, an exported variable
// and a JUnit suite and case named after the secret. Nothing stored (logs,
// stages, outputs, variables, the error) holds any form of it.
func TestSecretsNeverReachStoredStateInAnyForm(t *testing.T) {
	e, _, out := newEngine(t)
	const token = "tok-Zq8+/vL2x?=k"
	const pem = "-----BEGIN TEST KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy\n-----END TEST KEY-----"
	e.Getenv = func(k string) string { return map[string]string{"API_TOKEN": token, "SIGNING_KEY": pem}[k] }
	project := "sm-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	junit := `printf '<testsuite name="%s"><testcase name="ok-%s"/><testcase name="bad-%s"><failure message="%s"/></testcase></testsuite>' "$API_TOKEN" "$API_TOKEN" "$API_TOKEN" "$API_TOKEN" > reports/leak.xml`
	yaml := fmt.Sprintf(`version: 1
project: %s
services:
  hello: { build: { context: hello }, port: 8080 }
environments:
  staging: { branch: develop, listen: { port: 18280 } }
pipeline:
  secrets: { names: [API_TOKEN, SIGNING_KEY] }
  stages:
    - name: leak
      actions:
        - name: print
          kind: command
          commands:
            - echo "plain $API_TOKEN"
            - printf %%s "$API_TOKEN" | base64
            - echo "$API_TOKEN" | base64
            - printf %%s "$API_TOKEN" | base64 | tr '+/' '-_' | tr -d '='
            - echo "$SIGNING_KEY"
            - printf %%s "$SIGNING_KEY" | base64 -w0; echo
            - echo "LEAK=$API_TOKEN" >> $CUTOVER_EXPORT
          export: [LEAK]
        - name: junit
          kind: test
          run_order: 2
          commands: ["mkdir -p reports", %q]
          reports: [reports/*.xml]
`, project, junit)
	repo, commit := testenv.GitRepo(t, "develop", map[string]string{"cutover.yaml": yaml, "hello/Dockerfile": "FROM scratch\n"})
	x, err := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "develop", Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != "failed" || !strings.Contains(string(x.Stages), `"LEAK":"***"`) || !strings.Contains(string(x.Stages), `"bad-***: ***"`) {
		t.Fatalf("want the junit action failed and the export stored masked: %s %s\n%s\n%s", x.Status, x.Error, x.Stages, out)
	}
	logs, err := e.Store.ListLogs(context.Background(), x.ID, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var stored strings.Builder
	for _, l := range logs {
		stored.WriteString(l.Line + "\n")
	}
	if !strings.Contains(stored.String(), "plain ***") {
		t.Fatalf("the commands did not run as expected:\n%s", stored.String())
	}
	whole, _ := json.Marshal(x)
	stored.Write(whole)
	stored.WriteString(out.String())
	if l := leaks(stored.String(), token, pem); len(l) > 0 {
		t.Fatalf("secrets leaked into stored state: %v\n%s", l, stored.String())
	}
}

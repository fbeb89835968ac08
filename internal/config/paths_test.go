package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const confinedYAML = `version: 1
project: shop
services:
  web:
    build: { context: %CONTEXT%, dockerfile: %DOCKERFILE% }
    port: 8080
environments:
  staging: { branch: develop }
pipeline:
  secrets: { file: %SECRETS%, names: [TOKEN] }
  stages:
    - name: test
      actions:
        - { name: unit, kind: test, commands: [true], reports: [%REPORTS%] }
        - { name: it, kind: integration, compose: %COMPOSE% }
`

// An attack on the workspace boundary: each path field of cutover.yaml in
// turn tries to climb out (.., an absolute path, a symbolic link that
// leads out); each is rejected with an error naming the field.
func TestPathsMustStayInsideTheWorkspace(t *testing.T) {
	outside := t.TempDir()
	_ = os.WriteFile(filepath.Join(outside, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	_ = os.WriteFile(filepath.Join(outside, "secrets.env"), []byte("TOKEN=x\n"), 0o644)
	good := map[string]string{"CONTEXT": "web", "DOCKERFILE": "Dockerfile", "SECRETS": "secrets.env", "REPORTS": "reports/*.xml", "COMPOSE": "docker-compose.yml"}
	workspace := func(t *testing.T) string {
		ws := filepath.Join(t.TempDir(), "ws")
		_ = os.MkdirAll(filepath.Join(ws, "app", "web"), 0o755)
		_ = os.WriteFile(filepath.Join(ws, "app", "web", "Dockerfile"), []byte("FROM scratch\n"), 0o644)
		if err := os.Symlink(outside, filepath.Join(ws, "app", "escape")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(ws, "app", "web"), filepath.Join(ws, "app", "inner")); err != nil {
			t.Fatal(err)
		}
		return ws
	}
	load := func(t *testing.T, ws string, set map[string]string) error {
		y := confinedYAML
		for k, v := range good {
			if s, ok := set[k]; ok {
				v = s
			}
			y = strings.ReplaceAll(y, "%"+k+"%", v)
		}
		path := filepath.Join(ws, "app", "cutover.yaml")
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadWithin(path, ws)
		return err
	}
	ws := workspace(t)
	if err := load(t, ws, nil); err != nil {
		t.Fatalf("paths inside the workspace: %v", err)
	}
	if err := load(t, ws, map[string]string{"CONTEXT": "inner", "REPORTS": "../app/reports/*.xml"}); err != nil {
		t.Fatalf("a symbolic link and a .. that stay inside: %v", err)
	}
	for _, tc := range []struct {
		key, value, field string
	}{
		{"CONTEXT", "../../../x", "services.web.build.context"},
		{"CONTEXT", outside, "services.web.build.context"},
		{"CONTEXT", "escape", "services.web.build.context"},
		{"DOCKERFILE", "../../../" + filepath.Base(outside) + "/Dockerfile", "services.web.build.dockerfile"},
		{"DOCKERFILE", "../escape/Dockerfile", "services.web.build.dockerfile"},
		{"SECRETS", "../../secrets.env", "pipeline.secrets.file"},
		{"SECRETS", filepath.Join(outside, "secrets.env"), "pipeline.secrets.file"},
		{"SECRETS", "escape/secrets.env", "pipeline.secrets.file"},
		{"REPORTS", "../../*.xml", "pipeline.stages[0].actions[0].reports[0]"},
		{"REPORTS", "escape/*.xml", "pipeline.stages[0].actions[0].reports[0]"},
		{"COMPOSE", "../../docker-compose.yml", "pipeline.stages[0].actions[1].compose"},
		{"COMPOSE", "escape/docker-compose.yml", "pipeline.stages[0].actions[1].compose"},
	} {
		err := load(t, ws, map[string]string{tc.key: tc.value})
		if err == nil || !strings.Contains(err.Error(), tc.field+": ") || !strings.Contains(err.Error(), "inside the workspace") {
			t.Errorf("%s: %s: want an error naming %s, got %v", tc.key, tc.value, tc.field, err)
		}
	}
	// From bytes alone (no directory), a climb out is still rejected.
	_, err := Parse("cutover.yaml", []byte(strings.NewReplacer("%CONTEXT%", "../x", "%DOCKERFILE%", "Dockerfile", "%SECRETS%", "s.env",
		"%REPORTS%", "r.xml", "%COMPOSE%", "c.yml").Replace(confinedYAML)))
	if err == nil || !strings.Contains(err.Error(), "services.web.build.context") {
		t.Fatalf("Parse: %v", err)
	}
}

func TestConfinedFollowsLinksOfTheExistingPart(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	_ = os.Symlink(outside, filepath.Join(root, "out"))
	if err := Confined(root, filepath.Join(root, "a", "b", "c")); err != nil {
		t.Fatalf("a path that does not exist yet, inside: %v", err)
	}
	if err := Confined(root, filepath.Join(root, "out", "new", "file")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("through a link that leads out: %v", err)
	}
	if err := Confined(root, filepath.Join(root, "..", filepath.Base(outside))); err == nil {
		t.Fatal("a .. that leads out must be rejected")
	}
}

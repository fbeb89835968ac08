package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
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

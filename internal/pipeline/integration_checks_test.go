package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
)

// An untrusted run's integration reads its base's compose file from a
// temporary directory and resolves its relative paths in the workspace
// (integration.Options.WorkingDir). The default checks (each service's
// health path on its port) were read from that copy with the temporary
// directory as the working directory: a compose file with an env_file
// (or a .env, an extends) beside it in the workspace could not be loaded
// there, and the action ran with no check at all, silently.
func TestDefaultIntegrationChecksResolveInTheWorkspace(t *testing.T) {
	ws := t.TempDir()
	compose := "services:\n  web:\n    image: example.invalid/web:1\n    ports: [\"8080:8080\"]\n    env_file: test.env\n"
	if err := os.WriteFile(filepath.Join(ws, "docker-compose.yml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "test.env"), []byte("MODE=test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "docker-compose.yml") // the base's copy, as run.integration writes it
	if err := os.WriteFile(tmp, []byte(compose), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("cutover.yaml", []byte(`version: 1
project: ic
services:
  web: { image: "example.invalid/web:1", port: 8080, health: { path: /healthz } }
environments:
  staging: { branch: main, listen: { port: 18381 } }
`))
	if err != nil {
		t.Fatal(err)
	}
	r := &run{cfg: cfg}
	checks := r.defaultIntegrationChecks(context.Background(), tmp, ws)
	if len(checks) != 1 || checks[0].Service != "web" || checks[0].Port != 8080 || checks[0].Path != "/healthz" {
		t.Fatalf("default checks %+v, want web's /healthz on 8080", checks)
	}
}

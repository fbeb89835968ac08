package bluemed_test

import (
	"context"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"

	"github.com/cutoverdev/cutover/internal/config"
)

// TestCutoverYAMLIsValid keeps the example in step with the config parser.
func TestCutoverYAMLIsValid(t *testing.T) {
	if _, err := config.Load("cutover.yaml"); err != nil {
		t.Fatalf("examples/bluemed/cutover.yaml: %v", err)
	}
}

// TestComposeFile loads docker-compose.yml the way `docker compose` does and
// checks what the README promises: ports, healthchecks through the binaries'
// own -healthcheck flag, and the frontend waiting for a healthy backend.
func TestComposeFile(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"docker-compose.yml"}, cli.WithWorkingDirectory("."))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, port := range map[string]uint32{"backend": 3001, "frontend": 3000} {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		if len(s.Ports) != 1 || s.Ports[0].Target != port {
			t.Errorf("%s ports %+v, want %d", name, s.Ports, port)
		}
		if hc := s.HealthCheck; hc == nil || len(hc.Test) != 3 || hc.Test[1] != "/"+name || hc.Test[2] != "-healthcheck" {
			t.Errorf("%s healthcheck %+v, want CMD /%s -healthcheck", name, s.HealthCheck, name)
		}
	}
	if dep := p.Services["frontend"].DependsOn["backend"]; dep.Condition != "service_healthy" {
		t.Errorf("frontend depends_on backend %+v, want condition service_healthy", dep)
	}
}

package config

import (
	"context"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
)

// The example monorepo (examples/bluemed, a module and repository of its
// own) is checked against cutover here, so it imports nothing of cutover.
const exampleDir = "../../examples/bluemed"

// TestExampleCutoverYAMLIsValid keeps the example in step with the parser.
func TestExampleCutoverYAMLIsValid(t *testing.T) {
	if _, err := Load(exampleDir + "/cutover.yaml"); err != nil {
		t.Fatalf("examples/bluemed/cutover.yaml: %v", err)
	}
}

// TestExampleComposeFile loads the example's docker-compose.yml the way
// `docker compose` does and checks what its README promises: ports,
// healthchecks through the binaries' own -healthcheck flag, and the frontend
// waiting for a healthy backend.
func TestExampleComposeFile(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"docker-compose.yml"}, cli.WithWorkingDirectory(exampleDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(exampleDir)
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
		if hc := s.HealthCheck; hc == nil || len(hc.Test) < 3 || hc.Test[1] != "/"+name || hc.Test[2] != "-healthcheck" {
			t.Errorf("%s healthcheck %+v, want CMD /%s -healthcheck", name, s.HealthCheck, name)
		}
	}
	if dep := p.Services["frontend"].DependsOn["backend"]; dep.Condition != "service_healthy" {
		t.Errorf("frontend depends_on backend %+v, want condition service_healthy", dep)
	}
}

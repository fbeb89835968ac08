package release

import (
	"io"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/ecr"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// The push itself is tested in internal/ecr against a local registry; here
// only the errors that come before any network traffic.
func TestBuildAndPushECRErrors(t *testing.T) {
	testenv.FakeAWSCredentials(t)
	cfg := &config.Config{Project: "bluemed", Environments: map[string]*config.Environment{
		"staging":    {Platform: config.PlatformECS},
		"production": {Platform: config.PlatformECS, ECS: &config.ECS{Region: "us-east-1", Endpoint: "http://127.0.0.1:9"}},
	}}
	_, err := buildAndPushECR(t.Context(), cfg, "staging", ecr.Options{}, nil, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "environment staging has no ecs section") {
		t.Errorf("no ecs section: %v", err)
	}
	_, err = buildAndPushECR(t.Context(), cfg, "production", ecr.Options{FailOnSeverity: "SEVERE"}, nil, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `ecr.fail_on_severity: "SEVERE" is not a severity`) {
		t.Errorf("bad severity: %v", err)
	}
}

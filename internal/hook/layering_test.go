package hook

import (
	"slices"
	"testing"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// Hooks keep their requests on the host through the leaf internal/loopback,
// not through the load generator.
func TestHookDoesNotImportTheLoadGenerator(t *testing.T) {
	deps := testenv.Imports(t, "internal/hook")
	if slices.Contains(deps, "internal/loadgen") {
		t.Fatalf("internal/hook (with its tests) depends on internal/loadgen: %v", deps)
	}
	if !slices.Contains(deps, "internal/loopback") {
		t.Fatalf("internal/hook's dependencies %v lack internal/loopback: the check reads the wrong list", deps)
	}
}

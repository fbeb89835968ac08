package alarm

import (
	"slices"
	"testing"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// Alarms judge traffic figures; they do not depend on the data plane that
// counts them (the figures' types live in the leaf internal/stats).
func TestAlarmDoesNotImportTheProxy(t *testing.T) {
	deps := testenv.Imports(t, "internal/alarm")
	if slices.Contains(deps, "internal/proxy") {
		t.Fatalf("internal/alarm (with its tests) depends on internal/proxy: %v", deps)
	}
	if !slices.Contains(deps, "internal/stats") {
		t.Fatalf("internal/alarm's dependencies %v lack internal/stats: the check reads the wrong list", deps)
	}
}

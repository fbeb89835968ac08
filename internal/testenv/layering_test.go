package testenv

import (
	"slices"
	"testing"
)

// TestLayering holds the package graph to its design (docs/DESIGN.md):
// leaves import nothing of cutover, and a package named here never depends,
// even through its tests, on what it must not.
func TestLayering(t *testing.T) {
	for _, leaf := range []string{"internal/stats", "internal/loopback", "internal/short", "internal/lines", "internal/enginelock", "internal/mask"} {
		if deps := Imports(t, leaf); len(deps) > 0 {
			t.Errorf("%s is a leaf but depends on %v", leaf, deps)
		}
	}
	for _, c := range []struct{ pkg, not, via string }{
		{"internal/alarm", "internal/proxy", "internal/stats"},     // alarms judge figures, not the data plane
		{"internal/hook", "internal/loadgen", "internal/loopback"}, // hooks stay on the host without the load generator
	} {
		deps := Imports(t, c.pkg)
		if slices.Contains(deps, c.not) {
			t.Errorf("%s depends on %s: %v", c.pkg, c.not, deps)
		}
		if !slices.Contains(deps, c.via) { // proves the list is the right one
			t.Errorf("%s's dependencies %v lack %s", c.pkg, deps, c.via)
		}
	}
}

package loopback

import (
	"testing"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// internal/loopback is a leaf: any package may import it without a cycle.
func TestIsALeaf(t *testing.T) {
	for _, dep := range testenv.Imports(t, "internal/loopback") {
		if dep != "internal/testenv" { // the test helper of this very test
			t.Errorf("internal/loopback depends on %s; a leaf imports nothing of cutover", dep)
		}
	}
}

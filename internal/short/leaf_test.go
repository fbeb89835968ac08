package short

import (
	"testing"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// internal/short is a leaf: any package may import it without a cycle.
func TestIsALeaf(t *testing.T) {
	for _, dep := range testenv.Imports(t, "internal/short") {
		if dep != "internal/testenv" { // the test helper of this very test
			t.Errorf("internal/short depends on %s; a leaf imports nothing of cutover", dep)
		}
	}
}

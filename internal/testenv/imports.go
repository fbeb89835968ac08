package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// Imports returns the cutover packages that pkg (an import path relative to
// the module, such as "internal/alarm") depends on, directly or not, with its
// tests' dependencies included, as `go list -deps -test` gives them. A layering
// test asserts on it: a leaf depends on nothing of cutover, alarm not on the proxy.
func Imports(t testing.TB, pkg string) []string {
	t.Helper()
	path := modulePath + "/" + pkg
	cmd := exec.Command("go", "list", "-deps", "-test", "-f", "{{.ImportPath}}", path)
	cmd.Dir = ModuleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list -deps -test %s: %s", path, msg)
	}
	var deps []string
	for _, p := range strings.Fields(string(out)) {
		// go list names test variants "p [p.test]" (split here into two
		// fields) and the test binary "p.test": keep plain package paths.
		if !strings.HasPrefix(p, modulePath+"/") || strings.HasSuffix(p, ".test") || p == path {
			continue
		}
		deps = append(deps, strings.TrimPrefix(p, modulePath+"/"))
	}
	return deps
}

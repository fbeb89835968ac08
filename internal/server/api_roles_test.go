package server

import (
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/auth"
)

// TestAPIRolesOnEveryRoute walks routePolicies: every route but the public
// ones refuses an anonymous call (401) and every token weaker than its
// role (403), and lets its role through the guard. A route added later is
// attacked the same way without touching this test.
func TestAPIRolesOnEveryRoute(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	roles := []auth.Role{auth.RoleViewer, auth.RoleDeployer, auth.RoleApprover, auth.RoleAdmin}
	var patterns []string
	for p := range routePolicies {
		if strings.Contains(p, " ") {
			patterns = append(patterns, p)
		}
	}
	sort.Strings(patterns)
	for _, p := range patterns {
		pol := routePolicies[p]
		method, path, _ := strings.Cut(p, " ")
		// Paths that name nothing: the handlers answer 404 (or 400 for a
		// bad body), never act.
		path = strings.NewReplacer("{id}", "x-nope", "{env}", "nope", "{name}", "nope").Replace(path)
		body := ""
		if method == http.MethodPost {
			body = "{}"
		}
		if pol.public {
			a.expect(t, req{method: method, path: path}, http.StatusOK)
			continue
		}
		a.expect(t, req{method: method, path: path, body: body}, http.StatusUnauthorized)
		for _, r := range roles {
			code, out := a.do(t, req{method: method, path: path, token: a.tokens[r.String()], body: body})
			switch {
			case !r.Allows(pol.role) && code != http.StatusForbidden:
				t.Errorf("%s as %s: %d %v, want 403", p, r, code, out)
			case r.Allows(pol.role) && (code == http.StatusUnauthorized || code == http.StatusForbidden || code >= 500):
				t.Errorf("%s as %s: %d %v, want the handler's answer", p, r, code, out)
			}
		}
	}
}

package server

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/auth"
)

type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Role      string              `json:"x-cutover-role"`
		Security  *[]map[string]any   `json:"security"`
		Responses map[string]struct{} `json:"responses"`
	} `json:"paths"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("internal/server/openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("internal/server/openapi.json: openapi %q, want 3.1.0", doc.OpenAPI)
	}
	return doc
}

// registeredPatterns are the "METHOD /v1/..." string literals of the
// package's sources: the patterns its handlers are registered with (a
// pattern built at run time is caught by the mux check below instead).
func registeredPatterns(t *testing.T) map[string]bool {
	t.Helper()
	files, _ := filepath.Glob("*.go")
	re := regexp.MustCompile(`^(GET|POST|PUT|PATCH|DELETE) /v1/`)
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if p, err := strconv.Unquote(lit.Value); err == nil && re.MatchString(p) {
					out[p] = true
				}
			}
			return true
		})
	}
	return out
}

// TestOpenAPIMatchesRoutes: every /v1 route the daemon serves is in the
// OpenAPI document with the role its policy asks, and the document names
// no route the daemon does not serve.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	inDoc := map[string]string{} // "METHOD /path" → role
	for path, ops := range doc.Paths {
		for method, op := range ops {
			inDoc[strings.ToUpper(method)+" "+path] = op.Role
			if len(op.Responses) == 0 {
				t.Errorf("openapi.json: %s %s has no responses", method, path)
			}
			if public := op.Security != nil && len(*op.Security) == 0; public != (op.Role == "public") {
				t.Errorf("openapi.json: %s %s: x-cutover-role %q but security %v", method, path, op.Role, op.Security)
			}
		}
	}
	want := map[string]bool{}
	for p := range routePolicies {
		if p != "/v1/" && strings.Contains(p, " /v1/") { // not the catch-all 404, nor /metrics
			want[p] = true
		}
	}
	for p := range registeredPatterns(t) {
		if _, ok := routePolicies[p]; !ok {
			t.Errorf("%s is registered but has no entry in routePolicies (auth.go)", p)
		}
		want[p] = true
	}
	if len(want) < 15 {
		t.Fatalf("only %d routes found: the walk is broken", len(want))
	}

	s := &Server{}
	s.setDefaults()
	s.routes()
	mux := s.mux
	for p := range want {
		method, path, _ := strings.Cut(p, " ")
		r := httptest.NewRequest(method, strings.NewReplacer("{id}", "x-1", "{env}", "staging", "{name}", "ci").Replace(path), nil)
		if _, got := mux.Handler(r); got != p {
			t.Errorf("%s: the daemon serves it as %q: a policy or document entry for a route that is not registered", p, got)
		}
		role, ok := inDoc[p]
		if !ok {
			t.Errorf("%s is served but missing from internal/server/openapi.json", p)
			continue
		}
		pol := policyOf(p, method)
		wantRole := pol.role.String()
		if pol.public {
			wantRole = "public"
		}
		if role != wantRole {
			t.Errorf("%s: openapi.json says role %q, routePolicies %q", p, role, wantRole)
		}
	}
	var extra []string
	for p := range inDoc {
		if !want[p] {
			extra = append(extra, p)
		}
	}
	sort.Strings(extra)
	for _, p := range extra {
		t.Errorf("openapi.json documents %s, which the daemon does not serve", p)
	}
}

// TestAuditSinceIsTheDocumentsPattern: GET /v1/audit takes exactly what
// its document's pattern for since says (auth.SincePattern, which
// ParseSince holds to): a client that follows the document is never
// refused, and a fuzzer that does not is always.
func TestAuditSinceIsTheDocumentsPattern(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name   string `json:"name"`
				Schema struct {
					Pattern string `json:"pattern"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range doc.Paths["/v1/audit"]["get"].Parameters {
		if p.Name == "since" {
			if p.Schema.Pattern != auth.SincePattern {
				t.Fatalf("openapi.json: GET /v1/audit since's pattern\n%s\nis not auth.SincePattern\n%s", p.Schema.Pattern, auth.SincePattern)
			}
			return
		}
	}
	t.Fatal("openapi.json: GET /v1/audit has no since parameter")
}

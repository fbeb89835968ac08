package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
)

// Under TLS (or behind a TLS proxy) the session cookie is Secure, besides
// HttpOnly and SameSite=Strict; the page forbids framing and inline code.
func TestSessionCookieIsSecureUnderTLS(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tok, err := auth.CreateToken(context.Background(), st, auth.Identity{Name: "test"}, "alice", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	for _, secure := range []bool{false, true} {
		h := &Handler{Config: &config.Config{Project: "shop"}, Store: st, Secure: secure}
		defer h.Close()
		r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"token": {tok.Token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "http://127.0.0.1:8790")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		c := w.Result().Cookies()
		if w.Code != http.StatusSeeOther || len(c) != 1 || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode || c[0].Secure != secure {
			t.Fatalf("Secure=%v: %d, cookies %+v", secure, w.Code, c)
		}
		csp := w.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || w.Header().Get("X-Frame-Options") != "DENY" {
			t.Fatalf("headers: %v", w.Header())
		}
	}
}

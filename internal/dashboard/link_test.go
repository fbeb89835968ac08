package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/store"
)

// A link points at the daemon over HTTPS when it serves TLS, and says
// whether anything answered.
func TestNewLinkFollowsTheDaemonsScheme(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"ok":true}`)) })
	owner := auth.Identity{Name: "owner", Role: auth.RoleAdmin}
	now := time.Now()
	for _, tc := range []struct {
		srv    *httptest.Server
		scheme string
	}{{httptest.NewServer(ok), "http://"}, {httptest.NewTLSServer(ok), "https://"}} {
		defer tc.srv.Close()
		addr := strings.TrimPrefix(strings.TrimPrefix(tc.srv.URL, "https://"), "http://")
		l, err := NewLink(context.Background(), st, owner, addr, now)
		if err != nil || !l.Answering || !strings.HasPrefix(l.URL, tc.scheme+addr+"/login?link=cutover-link_") || !l.Expires.Equal(now.Add(auth.LinkTTL)) {
			t.Fatalf("NewLink(%s) = %+v, %v", tc.srv.URL, l, err)
		}
	}
	l, err := NewLink(context.Background(), st, owner, "127.0.0.1:1", now)
	if err != nil || l.Answering || !strings.HasPrefix(l.URL, "http://127.0.0.1:1/") {
		t.Fatalf("no daemon: %+v, %v", l, err)
	}
	if _, err := NewLink(context.Background(), st, owner, "localhost", now); err == nil || !strings.Contains(err.Error(), "--addr") {
		t.Fatalf("an address without a port: %v", err)
	}
}

package dashboard

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/store"
)

// counting is a request body of n bytes that counts what was read of it.
type counting struct {
	n, read int
}

func (c *counting) Read(p []byte) (int, error) {
	if c.read >= c.n {
		return 0, io.EOF
	}
	k := min(len(p), c.n-c.read)
	for i := range p[:k] {
		p[i] = 'A'
	}
	if c.read == 0 && k >= 6 {
		copy(p, "token=")
	}
	c.read += k
	return k, nil
}

// The login form is the dashboard's anonymous door, and its POST body was
// parsed by net/http's ParseForm, which reads up to 10 MB into memory: any
// client made the daemon hold 10 MB per request, with no bound on how
// many at once (the webhook receiver keeps a forged delivery to a fixed
// 64 KiB). A form's body is at most 64 KiB now, refused with 413 past it.
func TestAttackAnonymousLoginBodyIsReadWhole(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := &Handler{Config: &config.Config{Project: "shop"}, Store: st}
	defer h.Close()
	for _, tc := range []struct {
		path string
		code int
		most int
	}{
		{"/login", http.StatusRequestEntityTooLarge, 64<<10 + 32<<10},
		{"/executions/x-1/approve", http.StatusUnauthorized, 0}, // no session: the body is not read
	} {
		path := tc.path
		body := &counting{n: 10 << 20}
		r := httptest.NewRequest(http.MethodPost, path, body)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "http://127.0.0.1:8790")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if body.read > tc.most || w.Code != tc.code {
			t.Errorf("POST %s of 10 MB: %d bytes read, answered %d; want at most %d read and %d (%.200s)", path, body.read, w.Code, tc.most, tc.code, strings.TrimSpace(w.Body.String()))
		}
	}
}

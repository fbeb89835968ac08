package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSPA(t *testing.T) {
	h, err := newHandler("v7")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	cases := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", `<meta name="bluemed-version" content="v7">`},
		{"/index.html", "text/html", `<meta name="bluemed-version" content="v7">`},
		{"/app.js", "javascript", `getJSON("/api/appointments")`},
		{"/style.css", "text/css", "font-family"},
		{"/appointments/42", "text/html", "<title>bluemed"}, // SPA fallback
		{"/missing.js", "text/html", "<title>bluemed"},
	}
	for _, c := range cases {
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if resp.StatusCode != 200 {
			t.Errorf("%s: status %d, want 200", c.path, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, c.contentType) {
			t.Errorf("%s: Content-Type %q, want %s", c.path, ct, c.contentType)
		}
		if !strings.Contains(string(body), c.contains) {
			t.Errorf("%s: body does not contain %q", c.path, c.contains)
		}
		if v := resp.Header.Get("X-Bluemed-Version"); v != "v7" {
			t.Errorf("%s: X-Bluemed-Version %q", c.path, v)
		}
	}
}

func TestSPARejectsWrites(t *testing.T) {
	h, err := newHandler("v7")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", rec.Code)
	}
}

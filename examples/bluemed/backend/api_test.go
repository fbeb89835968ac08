package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHealthReportsVersion(t *testing.T) {
	h := newHandler("v42", "http://localhost:3000", fault{})
	rec := get(t, h, "GET", "/api/health", nil)
	if rec.Code != 200 {
		t.Fatalf("status %d, want 200", rec.Code)
	}
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body["status"] != "ok" || body["version"] != "v42" {
		t.Errorf("body %v, want status ok and version v42", body)
	}
	if got := rec.Header().Get("X-Bluemed-Version"); got != "v42" {
		t.Errorf("X-Bluemed-Version %q, want v42", got)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
}

func TestAppointmentsAndVersion(t *testing.T) {
	h := newHandler("v1", "http://localhost:3000", fault{})
	rec := get(t, h, "GET", "/api/appointments", nil)
	var body struct{ Appointments []Appointment }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 200 {
		t.Fatalf("status %d, err %v", rec.Code, err)
	}
	if len(body.Appointments) != len(appointments) || body.Appointments[0].Patient == "" {
		t.Errorf("got %+v", body.Appointments)
	}
	rec = get(t, h, "GET", "/api/version", nil)
	if rec.Code != 200 || rec.Body.String() != "{\"version\":\"v1\"}\n" {
		t.Errorf("version: %d %q", rec.Code, rec.Body)
	}
}

func TestUnknownRouteIs404AndWrongMethod405(t *testing.T) {
	h := newHandler("v1", "o", fault{})
	if rec := get(t, h, "GET", "/api/nope", nil); rec.Code != 404 {
		t.Errorf("unknown route: %d, want 404", rec.Code)
	}
	if rec := get(t, h, "POST", "/api/health", nil); rec.Code != 405 {
		t.Errorf("POST /api/health: %d, want 405", rec.Code)
	}
}

func TestCORS(t *testing.T) {
	h := newHandler("v1", "http://127.0.0.1:8080", fault{})
	rec := get(t, h, "GET", "/api/appointments", map[string]string{"Origin": "http://127.0.0.1:8080"})
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "http://127.0.0.1:8080" {
		t.Errorf("Allow-Origin %q", got)
	}
	rec = get(t, h, "OPTIONS", "/api/appointments", map[string]string{
		"Origin": "http://127.0.0.1:8080", "Access-Control-Request-Method": "GET",
	})
	if rec.Code != http.StatusNoContent {
		t.Errorf("preflight status %d, want 204", rec.Code)
	}
	if rec.Header().Get("Access-Control-Allow-Methods") == "" || rec.Header().Get("Access-Control-Allow-Origin") != "http://127.0.0.1:8080" {
		t.Errorf("preflight headers %v", rec.Header())
	}
}

func TestFaultError500KeepsHealthGreen(t *testing.T) {
	h := newHandler("v1", "o", fault{kind: faultError500})
	if rec := get(t, h, "GET", "/api/health", nil); rec.Code != 200 {
		t.Errorf("health %d, want 200: the fault must hide from health checks", rec.Code)
	}
	for _, p := range []string{"/api/appointments", "/api/version"} {
		if rec := get(t, h, "GET", p, nil); rec.Code != 500 {
			t.Errorf("%s: %d, want 500", p, rec.Code)
		}
	}
}

func TestFaultSlowDelaysBusinessOnly(t *testing.T) {
	h := newHandler("v1", "o", fault{kind: faultSlow, delay: 300 * time.Millisecond})
	start := time.Now()
	if rec := get(t, h, "GET", "/api/appointments", nil); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	// Only a lower bound: a busy machine may be slower, never faster.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("answered after %s, want at least 300ms", d)
	}
}

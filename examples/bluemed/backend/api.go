package main

import (
	"encoding/json"
	"net/http"
	"time"
)

// Appointment is one booking in the demo clinic's agenda.
type Appointment struct {
	ID        int       `json:"id"`
	Patient   string    `json:"patient"`
	Clinician string    `json:"clinician"`
	Specialty string    `json:"specialty"`
	Start     time.Time `json:"start"`
	Minutes   int       `json:"minutes"`
}

// appointments is static: the example is about deploying, not about storage.
var appointments = []Appointment{
	{1, "Ana Torres", "Dr. Ruiz", "Sports medicine", time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), 30},
	{2, "Luis Gómez", "Dr. Ruiz", "Sports medicine", time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC), 30},
	{3, "Marta Díaz", "Dr. Chen", "Physiotherapy", time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), 45},
	{4, "Jon Smith", "Dr. Chen", "Physiotherapy", time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC), 45},
	{5, "Sara Okafor", "Dr. Patel", "Traumatology", time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC), 20},
}

// api holds what the handlers need; newHandler wires them.
type api struct {
	version    string
	corsOrigin string
	fault      fault
}

// newHandler returns the backend's HTTP API.
func newHandler(version, corsOrigin string, f fault) http.Handler {
	a := &api{version: version, corsOrigin: corsOrigin, fault: f}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/health", a.health)
	mux.Handle("GET /api/version", a.business(a.versionInfo))
	mux.Handle("GET /api/appointments", a.business(a.listAppointments))
	return a.cors(mux)
}

// cors answers preflight requests and labels every answer with the allowed
// origin and the version that produced it (the header lets tests count which
// color served each request).
func (a *api) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", a.corsOrigin)
		h.Set("Vary", "Origin")
		h.Set("X-Bluemed-Version", a.version)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// business applies the business-endpoint faults; health is never wrapped, so
// a broken release still looks healthy to a plain health check.
func (a *api) business(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch a.fault.kind {
		case faultError500:
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "simulated failure (" + FaultEnv + "=error500)"})
			return
		case faultSlow:
			select {
			case <-time.After(a.fault.delay):
			case <-r.Context().Done():
				return
			}
		}
		h(w, r)
	})
}

func (a *api) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": a.version})
}

func (a *api) versionInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": a.version})
}

func (a *api) listAppointments(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"appointments": appointments})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a write error means the client left; nothing to do
}

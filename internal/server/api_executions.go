package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/store"
)

// Bounds of a followed log (GET /v1/executions/{id}/logs?follow=1): it ends
// when the execution has finished and every line is sent, or after
// followMax, whichever comes first, or (an "error" event) once its token
// is revoked, checked every followRecheck; a comment every followBeat
// keeps proxies from closing a quiet stream.
var (
	followMax     = time.Hour
	followBeat    = 15 * time.Second
	followPoll    = 250 * time.Millisecond
	followRecheck = 5 * time.Second
	// At most followPerToken followed logs per token at once, followTotal
	// in all; one more is refused (429), as the dashboard's live views are.
	followPerToken = 8
	followTotal    = 128
)

// logPage is how many lines one GET of a log returns at most; the next
// page starts after the last Seq.
const logPage = 5000

// evidenceView is GET /v1/executions/{id}/evidence: the execution's
// approvals with what each showed (or shows) the approver.
type evidenceView struct {
	Execution string           `json:"execution"`
	Status    string           `json:"status"`
	Approvals []store.Approval `json:"approvals"`
}

// apiExecutionRoutes serves an execution's evidence and logs.
func (s *Server) apiExecutionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/executions/{id}/evidence", func(w http.ResponseWriter, r *http.Request) {
		x, ok := s.execution(w, r)
		if !ok {
			return
		}
		list, err := s.Store.ListApprovals(r.Context(), x.ID)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, evidenceView{Execution: x.ID, Status: x.Status, Approvals: nonNil(list)})
	})
	mux.HandleFunc("GET /v1/executions/{id}/logs", s.executionLogs)
}

// execution is the {id} execution of r; else it answers 404 (or 500).
func (s *Server) execution(w http.ResponseWriter, r *http.Request) (store.Execution, bool) {
	x, err := s.Store.GetExecution(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Errorf("no execution %q; executions are listed by GET /v1/executions", r.PathValue("id")))
		return x, false
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
		return x, false
	case x.Project != s.Config.Project:
		// The store may hold other projects' executions: as for one that
		// does not exist (the dashboard, Cancel and Decide refuse them too).
		writeError(w, http.StatusNotFound, fmt.Errorf("no execution %q; executions are listed by GET /v1/executions", r.PathValue("id")))
		return store.Execution{}, false
	}
	return x, true
}

// executionLogs answers the log lines (secrets were masked before they
// were stored) after ?after=SEQ, of ?action=NAME or all actions: as a JSON
// array, or with ?follow=1 as Server-Sent Events (event "line" with the
// line as JSON and its Seq as id; event "end" with the execution's final
// status, or "timeout" after followMax).
func (s *Server) executionLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var after int64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("query parameter after=%q: give the Seq of the last line seen, a whole number ≥ 0", v))
			return
		}
		after = n
	}
	follow := false
	switch v := q.Get("follow"); v {
	case "", "0", "false":
	case "1", "true":
		follow = true
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("query parameter follow=%q: give 1 to stream the log as it grows, or leave it out", v))
		return
	}
	action := q.Get("action")
	x, ok := s.execution(w, r)
	if !ok {
		return
	}
	if !follow {
		lines, err := s.Store.ListLogs(r.Context(), x.ID, action, after, logPage)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		for i := range lines {
			lines[i].Line = auth.Mask(lines[i].Line) // lines stored before the pipeline masked them so
		}
		writeJSON(w, http.StatusOK, nonNil(lines))
		return
	}

	who := identity(r)
	done, ok := s.follows.Acquire(who.Via+" "+who.Name, followPerToken, followTotal)
	if !ok {
		s.Log.Warn("followed log refused: too many open", "who", who.Name, "remote", r.RemoteAddr)
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusTooManyRequests, fmt.Errorf("too many followed logs open (at most %d per token, %d in all): end one, or read the log without follow=1", followPerToken, followTotal))
		return
	}
	defer done()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	end := time.NewTimer(followMax)
	defer end.Stop()
	beat := time.NewTicker(followBeat)
	defer beat.Stop()
	checked := time.Now()
	for {
		if time.Since(checked) >= followRecheck {
			if _, err := auth.Authenticate(r.Context(), s.Store, r.Header.Get("Authorization"), r.RemoteAddr); err != nil {
				if r.Context().Err() == nil {
					sendEvent(w, "error", 0, map[string]string{"error": "the stream ends: " + err.Error()})
					_ = rc.Flush()
				}
				return
			}
			checked = time.Now()
		}
		// The status first, then the lines: a final status read before
		// an empty page means every line was sent.
		cur, err := s.Store.GetExecution(r.Context(), x.ID)
		if err != nil {
			if r.Context().Err() == nil {
				sendEvent(w, "error", 0, map[string]string{"error": err.Error()})
				_ = rc.Flush()
			}
			return
		}
		lines, err := s.Store.ListLogs(r.Context(), x.ID, action, after, 500)
		if err != nil {
			if r.Context().Err() == nil {
				sendEvent(w, "error", 0, map[string]string{"error": err.Error()})
				_ = rc.Flush()
			}
			return
		}
		for _, l := range lines {
			l.Line = auth.Mask(l.Line)
			sendEvent(w, "line", l.Seq, l)
			after = l.Seq
		}
		if len(lines) > 0 {
			if rc.Flush() != nil {
				return
			}
			continue
		}
		if !store.ExecutionActive(cur.Status) {
			sendEvent(w, "end", 0, map[string]string{"execution": cur.ID, "status": cur.Status})
			_ = rc.Flush()
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			sendEvent(w, "timeout", 0, map[string]string{"execution": cur.ID, "status": cur.Status, "resume": fmt.Sprintf("?follow=1&after=%d", after)})
			_ = rc.Flush()
			return
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": still running\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-time.After(followPoll):
		}
	}
}

// sendEvent writes one Server-Sent Event; data is one line of JSON.
func sendEvent(w http.ResponseWriter, event string, id int64, data any) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // a log line is shown as it was written
	_ = enc.Encode(data)     // one line: the encoder escapes newlines inside strings
	if id > 0 {
		fmt.Fprintf(w, "id: %d\n", id)
	}
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, strings.TrimSuffix(b.String(), "\n"))
}

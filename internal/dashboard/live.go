package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/store"
)

// recheck is how often a stream checks that its session is still live: a
// logout or a revoked token ends the streams of that session too.
const recheck = 5 * time.Second

// stream starts a Server-Sent Events answer for a live session (401
// otherwise) within the stream limits (429 otherwise); it returns the
// session, a send func and the func to call when the stream ends, or false.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request) (auth.Session, func(event, id string, data []byte) error, func(), bool) {
	s, err := h.session(r)
	if err != nil {
		h.noSession(w, r, err)
		return s, nil, nil, false
	}
	done, ok := h.open.Acquire(auth.Hash(s.Secret), h.MaxSessionStreams, h.MaxStreams)
	if !ok {
		h.Log.Warn("dashboard live stream refused: too many open", "who", s.Identity.Name, "remote", r.RemoteAddr, "path", r.URL.Path)
		w.Header().Set("Retry-After", "10")
		h.refuse(w, r, http.StatusTooManyRequests, fmt.Sprintf("too many live views open (at most %d per session, %d in all): close some dashboard tabs", h.MaxSessionStreams, h.MaxStreams))
		return s, nil, nil, false
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event, id string, data []byte) error {
		var b bytes.Buffer
		if id != "" {
			fmt.Fprintf(&b, "id: %s\n", id)
		}
		fmt.Fprintf(&b, "event: %s\n", event)
		// EventSource ends a line at CR, LF or CRLF: a lone CR in the data
		// (a test case's name in a pull request's JUnit report) would end
		// the event and start one of the sender's. HTML reads CR as LF.
		data = bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
		for _, line := range bytes.Split(data, []byte("\n")) {
			fmt.Fprintf(&b, "data: %s\n", line)
		}
		b.WriteString("\n")
		if _, err := w.Write(b.Bytes()); err != nil {
			return err
		}
		return rc.Flush()
	}
	return s, send, done, true
}

// live pushes the live part of the page fn builds (its "live" template) as
// an "html" event whenever it changes, looking every Tick, until the
// client goes, the session ends ("end" event), or the daemon stops. Every
// live page is a viewer's.
func (h *Handler) live(fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, send, done, ok := h.stream(w, r)
		if !ok {
			return
		}
		defer done()
		var last []byte
		checked := h.Now()
		t := time.NewTicker(h.Tick)
		defer t.Stop()
		for {
			if !h.stillLoggedIn(r, s, &checked, send) {
				return
			}
			page, data, err := fn(r, s)
			var html []byte
			if err == nil {
				html, err = h.fragment(page, s, data)
			}
			if err != nil {
				html = []byte(`<p class="error">` + template.HTMLEscapeString(err.Error()) + `</p>`)
			}
			if !bytes.Equal(html, last) {
				if send("html", "", html) != nil {
					return
				}
				last = html
			}
			select {
			case <-r.Context().Done():
				return
			case <-h.ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}

// liveLog streams an execution's log lines (stored masked) as "log" events
// with their seq as the event id, so a reconnecting EventSource resumes
// after the last line it got (Last-Event-ID); "end" once the execution has
// finished and every line was sent.
func (h *Handler) liveLog(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := h.session(r); err != nil {
		h.noSession(w, r, err)
		return
	}
	if x, err := h.Store.GetExecution(r.Context(), id); err != nil || x.Project != h.Config.Project {
		http.Error(w, fmt.Sprintf("no execution %q", id), http.StatusNotFound)
		return
	}
	s, send, done, ok := h.stream(w, r)
	if !ok {
		return
	}
	defer done()
	var after int64
	_, _ = fmt.Sscan(r.Header.Get("Last-Event-ID"), &after)
	checked := h.Now()
	t := time.NewTicker(h.Tick / 2)
	defer t.Stop()
	for {
		if !h.stillLoggedIn(r, s, &checked, send) {
			return
		}
		// Read the status first: lines written before a final status are
		// all read by the ListLogs that follows it.
		x, err := h.Store.GetExecution(r.Context(), id)
		if err != nil {
			return
		}
		lines, err := h.Store.ListLogs(r.Context(), id, "", after, 500)
		if err != nil {
			return
		}
		for _, l := range lines {
			data, _ := json.Marshal(struct {
				Action string `json:"action"`
				Time   string `json:"time"`
				Line   string `json:"line"`
			}{l.Action, l.Time.Local().Format("15:04:05"), auth.Mask(l.Line)})
			if send("log", fmt.Sprint(l.Seq), data) != nil {
				return
			}
			after = l.Seq
		}
		if len(lines) < 500 && !store.ExecutionActive(x.Status) {
			_ = send("end", "", []byte(x.Status))
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stillLoggedIn checks, at most every recheck, that a stream's session is
// still live; when it is not, it sends "end" and says so.
func (h *Handler) stillLoggedIn(r *http.Request, s auth.Session, checked *time.Time, send func(event, id string, data []byte) error) bool {
	if h.Now().Sub(*checked) < recheck {
		return true
	}
	if _, err := auth.SessionOf(r.Context(), h.Store, s.Secret, r.RemoteAddr, h.Now()); err != nil {
		_ = send("end", "", []byte("session ended"))
		return false
	}
	*checked = h.Now()
	return true
}

package dashboard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/store"
)

// CookieName is the session cookie; cutover's proxy never passes it on
// to the apps it serves (a browser sends it to every port of the host).
const CookieName = proxy.SessionCookie

// session is the browser's live session, or auth.ErrNoSession.
func (h *Handler) session(r *http.Request) (auth.Session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return auth.Session{}, auth.ErrNoSession
	}
	return auth.UseSession(r.Context(), h.Store, c.Value, r.RemoteAddr, h.Now())
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.Secure || r.TLS != nil,
	})
}

// loginPage is the login form; with ?link=SECRET (a one-time link from
// `cutover dashboard`) it asks to log in with that link. A GET never uses
// the link: a link previewer or prefetcher would burn it, and a page of
// another site could log the browser in as someone else (login CSRF). The
// form's POST, with the daemon's Origin, uses it.
func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	link := r.URL.Query().Get("link")
	if link == "" {
		if _, err := h.session(r); err == nil {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
	}
	h.render(w, r, http.StatusOK, "login", auth.Session{}, loginView{Link: link})
}

// loginToken starts a session from the login form: a one-time link (its
// "link" field) or an API token typed in.
func (h *Handler) loginToken(w http.ResponseWriter, r *http.Request) {
	if !hasOrigin(r) {
		h.refuse(w, r, http.StatusForbidden, "a login must come from the dashboard's own form (no Origin header)")
		return
	}
	if h.fails.blocked(r.RemoteAddr, h.Now()) {
		h.Log.Warn("dashboard login refused: too many failed logins from this address", "remote", r.RemoteAddr)
		w.Header().Set("Retry-After", fmt.Sprint(int(loginWindow.Seconds())))
		h.render(w, r, http.StatusTooManyRequests, "login", auth.Session{}, loginView{
			Error: fmt.Sprintf("too many failed logins from your address: try again in a minute (at most %d per minute)", loginFailures)})
		return
	}
	if !h.readForm(w, r) {
		return
	}
	if link := r.PostFormValue("link"); link != "" {
		s, err := auth.LoginWithLink(r.Context(), h.Store, link, r.RemoteAddr, h.Now())
		h.loggedIn(w, r, s, "link", err)
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	s, err := auth.LoginWithToken(r.Context(), h.Store, token, r.RemoteAddr, h.Now())
	h.loggedIn(w, r, s, "token", err)
}

// loggedIn sets the cookie of a new session and goes to the overview, or
// shows the form again with why the login failed. Both are audited.
func (h *Handler) loggedIn(w http.ResponseWriter, r *http.Request, s auth.Session, how string, err error) {
	who := s.Identity
	if err != nil {
		who = auth.Identity{Name: "anonymous", Via: auth.ViaDashboard, Remote: r.RemoteAddr}
	}
	if aerr := auth.Record(r.Context(), h.Store, who, actionLogin, how, err); aerr != nil {
		h.Log.Error("cannot write the audit log", "action", actionLogin, "err", aerr)
	}
	if err != nil {
		code, msg := http.StatusUnauthorized, err.Error()
		switch {
		case errors.Is(err, store.ErrLinkUsed), errors.Is(err, store.ErrLinkExpired):
			code = http.StatusForbidden
		case errors.Is(err, store.ErrNotFound):
			code, msg = http.StatusForbidden, "this login link is not valid: run `cutover dashboard` for a new one"
		case errors.Is(err, auth.ErrBadToken), errors.Is(err, auth.ErrNoToken):
			msg = "that token is not valid (malformed, unknown or revoked)"
		default:
			code = http.StatusInternalServerError
		}
		if code != http.StatusInternalServerError {
			h.fails.add(r.RemoteAddr, h.Now())
		}
		h.Log.Warn("dashboard login refused", "remote", r.RemoteAddr, "via", how, "err", auth.Mask(err.Error()))
		h.render(w, r, code, "login", auth.Session{}, loginView{Error: msg})
		return
	}
	if c, err := r.Cookie(CookieName); err == nil {
		_ = auth.Logout(r.Context(), h.Store, c.Value, h.Now()) // the session this login replaces
	}
	h.setCookie(w, r, s.Secret, int(auth.SessionTTL.Seconds()))
	// The action key goes in the fragment, which the browser never sends:
	// live.js keeps it in the origin's storage and takes it off the URL.
	w.Header().Set("Location", "/#"+actionKeyFragment+s.ActionKey)
	w.WriteHeader(http.StatusSeeOther)
}

// actionKeyFragment starts the fragment of the page a login goes to: the
// session's action key follows (live.js reads it).
const actionKeyFragment = "key="

// logout ends the session in the store, not only in the browser.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	s, ok := h.checkPost(w, r)
	if !ok {
		return
	}
	err := auth.Logout(r.Context(), h.Store, s.Secret, h.Now())
	if aerr := auth.Record(r.Context(), h.Store, s.Identity, actionLogout, s.Identity.Name, err); aerr != nil {
		h.Log.Error("cannot write the audit log", "action", actionLogout, "err", aerr)
	}
	if err != nil {
		h.refuse(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	h.setCookie(w, r, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// hasOrigin: the request says where it comes from. Browsers send Origin on
// every POST; the daemon's guard has already refused a foreign one.
func hasOrigin(r *http.Request) bool { return r.Header.Get("Origin") != "" }

// checkPost admits a form POST: an Origin, a live session (401) and its
// action key (403), which the browser keeps in the dashboard origin's
// storage: a cookie and a page are not enough (auth.Session.ActionKey).
func (h *Handler) checkPost(w http.ResponseWriter, r *http.Request) (auth.Session, bool) {
	if !hasOrigin(r) {
		h.refuse(w, r, http.StatusForbidden, "refused: a form of the dashboard sends an Origin header; this request has none")
		return auth.Session{}, false
	}
	s, err := h.session(r)
	if err != nil {
		h.noSession(w, r, err)
		return auth.Session{}, false
	}
	if !h.readForm(w, r) {
		return auth.Session{}, false
	}
	if !s.CheckAction(r.PostFormValue("key")) {
		h.Log.Warn("dashboard form refused: the session's action key is missing or wrong", "remote", r.RemoteAddr, "path", r.URL.Path, "who", s.Identity.Name)
		h.refuse(w, r, http.StatusForbidden, "refused: this browser does not hold this session's action key (its page script keeps it from the login; JavaScript off, another browser, or a session from an older cutover): log out and log in again")
		return auth.Session{}, false
	}
	return s, true
}

// maxFormBytes bounds a form's body: its fields are a token or a link, the
// action key, a revision and a comment. net/http's ParseForm alone reads
// up to 10 MB into memory, and the login form takes anonymous requests.
const maxFormBytes = 64 << 10

// readForm parses a form's body, at most maxFormBytes (413 past it, 400
// for one that cannot be read), before any of its fields is used.
func (h *Handler) readForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	err := r.ParseForm()
	if err == nil {
		return true
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		h.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("a form's body is at most %d KiB", maxFormBytes>>10))
	} else {
		h.refuse(w, r, http.StatusBadRequest, "the form's body cannot be read: "+err.Error())
	}
	return false
}

// noSession: a page sends the browser to the login form; anything else
// (a form, a live stream) answers 401.
func (h *Handler) noSession(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, auth.ErrNoSession) {
		h.refuse(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/live/") {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	h.refuse(w, r, http.StatusUnauthorized, err.Error())
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h.render(w, r, code, "error", auth.Session{}, errorView{Code: code, Status: http.StatusText(code), Message: msg})
}

// Failed logins from one address: at most loginFailures within
// loginWindow; then every login from it is refused (429, not audited: an
// anonymous client would otherwise grow the audit log without end) until
// the window has passed. Behind a proxy (--behind-proxy) every browser
// shares the proxy's address, so a flood there delays everyone's login by
// a minute at most; sessions already open are not affected.
const (
	loginFailures = 10
	loginWindow   = time.Minute
)

type failures struct {
	mu sync.Mutex
	m  map[string][]time.Time // by client (failureKey): the failures within the window
}

// maxFailureClients bounds the clients whose failures are kept. Past it
// (once the expired are pruned) a client not in the table is refused as if
// blocked: before, the table was emptied, and failures from 10,001
// addresses unblocked a blocked one.
const maxFailureClients = 10000

// failureKey is what failed logins are counted by: an IPv4 address, or an
// IPv6 address's /64 (one host's share: each address of a /64 had its own
// ten).
func failureKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if ip = ip.Unmap(); ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.String()
		}
	}
	return ip.String()
}

// recent prunes and returns the failures of key within the window; f.mu held.
func (f *failures) recent(key string, now time.Time) []time.Time {
	ts := f.m[key]
	for len(ts) > 0 && now.Sub(ts[0]) >= loginWindow {
		ts = ts[1:]
	}
	if len(ts) == 0 {
		delete(f.m, key)
	} else {
		f.m[key] = ts
	}
	return ts
}

// full prunes every client's expired failures and reports whether the
// table still holds maxFailureClients; f.mu held.
func (f *failures) full(now time.Time) bool {
	if len(f.m) < maxFailureClients {
		return false
	}
	for k := range f.m {
		f.recent(k, now)
	}
	return len(f.m) >= maxFailureClients
}

func (f *failures) blocked(remote string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := failureKey(remote)
	if _, known := f.m[key]; !known && f.full(now) {
		return true
	}
	return len(f.recent(key, now)) >= loginFailures
}

func (f *failures) add(remote string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string][]time.Time{}
	}
	key := failureKey(remote)
	if _, known := f.m[key]; !known && f.full(now) {
		return // refused as blocked (blocked): no room to count it
	}
	f.m[key] = append(f.recent(key, now), now)
}

// flashes hold the one message a session sees after an action (what it
// did, or why it failed), shown once on the next page.
type flashes struct {
	mu sync.Mutex
	m  map[string]flash
}

type flash struct {
	Error   bool
	Message string
}

func (f *flashes) put(s auth.Session, fl flash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]flash{}
	}
	if len(f.m) > 1000 { // bounded: an old message is not worth memory
		clear(f.m)
	}
	f.m[auth.Hash(s.Secret)] = fl
}

func (f *flashes) take(s auth.Session) *flash {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl, ok := f.m[auth.Hash(s.Secret)]
	if !ok {
		return nil
	}
	delete(f.m, auth.Hash(s.Secret))
	return &fl
}

func errorf(format string, a ...any) flash {
	return flash{Error: true, Message: fmt.Sprintf(format, a...)}
}

package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/cutoverdev/cutover/internal/store"
)

// Dashboard logins. A browser holds a session secret in a cookie; the store
// keeps only its SHA-256, so a stolen database opens no session. A session
// starts from an API token typed into the login form (it then lives only as
// long as that token), or from a one-time login link that `cutover
// dashboard` makes for the machine's owner (usable once, within LinkTTL).
const (
	ViaDashboard = "dashboard"
	LinkTTL      = 5 * time.Minute
	SessionTTL   = 12 * time.Hour
	// SessionIdle ends a session not used (a page, a form) for that long,
	// within its SessionTTL: a browser left logged in does not stay a
	// production key for 12 hours.
	SessionIdle = time.Hour
	linkPrefix  = "cutover-link_"
)

// A session secret and a link secret: 256 random bits in base32 each.
var (
	sessionRE = regexp.MustCompile(`^[A-Z2-7]{52}$`)
	linkRE    = regexp.MustCompile(`^` + linkPrefix + `[A-Z2-7]{52}$`)
)

// ErrNoSession means the browser has no live session: log in again.
var ErrNoSession = errors.New("not logged in (or the session ended): log in with a token or a link from `cutover dashboard`")

// NewLoginLink stores a one-time login link for who, valid from now for
// LinkTTL, and returns its secret: the only time it is known.
func NewLoginLink(ctx context.Context, st *store.Store, who Identity, now time.Time) (string, error) {
	secret := linkPrefix + rand.Text() + rand.Text()
	err := st.CreateLoginLink(ctx, store.LoginLink{Hash: Hash(secret), Actor: who.Name, Role: who.Role.String(),
		CreatedAt: now, ExpiresAt: now.Add(LinkTTL)})
	return secret, err
}

// Session is a live dashboard session: who it is, and the secret that
// names it (the cookie's value).
type Session struct {
	Identity Identity
	Secret   string
	// ActionKey is the secret every form of the session sends: set only
	// by the login, the one time it is known (the store keeps its hash).
	// The browser keeps it in the dashboard origin's storage, not in a
	// cookie and in no page: a browser sends a host's cookies to every
	// port of the host, so an app on another port of the dashboard's host
	// gets the session's cookie, and with it every page; not this key.
	ActionKey  string
	actionHash string
}

// CheckAction reports whether key is the session's action key (a form
// sends it; see ActionKey). A session from before the keys has none.
func (s Session) CheckAction(key string) bool {
	if s.actionHash == "" || !sessionRE.MatchString(key) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(Hash(key)), []byte(s.actionHash)) == 1
}

// LoginWithLink uses a one-time link (store.ErrLinkUsed, ErrLinkExpired or
// a wrapped store.ErrNotFound when it cannot be) and starts a session of
// the identity it was made for.
func LoginWithLink(ctx context.Context, st *store.Store, link, remote string, now time.Time) (Session, error) {
	if !linkRE.MatchString(link) {
		return Session{}, fmt.Errorf("this login link is malformed: %w", store.ErrNotFound)
	}
	l, err := st.UseLoginLink(ctx, Hash(link), now)
	if err != nil {
		return Session{}, err
	}
	return startSession(ctx, st, l.Actor, l.Role, "", remote, now)
}

// LoginWithToken checks an API token (ErrBadToken) and starts a session of
// its holder, which ends when the token is revoked.
func LoginWithToken(ctx context.Context, st *store.Store, token, remote string, now time.Time) (Session, error) {
	who, err := Authenticate(ctx, st, "Bearer "+token, remote)
	if err != nil {
		return Session{}, err
	}
	return startSession(ctx, st, who.Name, who.Role.String(), Hash(token), remote, now)
}

func startSession(ctx context.Context, st *store.Store, actor, role, tokenHash, remote string, now time.Time) (Session, error) {
	r, err := ParseRole(role)
	if err != nil {
		return Session{}, err
	}
	secret, key := rand.Text()+rand.Text(), rand.Text()+rand.Text()
	if err := st.CreateSession(ctx, store.Session{Hash: Hash(secret), Actor: actor, Role: r.String(), Via: ViaDashboard,
		TokenHash: tokenHash, ActionHash: Hash(key), CreatedAt: now, ExpiresAt: now.Add(SessionTTL)}); err != nil {
		return Session{}, err
	}
	return Session{Identity: Identity{Name: actor, Role: r, Via: ViaDashboard, Remote: remote}, Secret: secret, ActionKey: key, actionHash: Hash(key)}, nil
}

// SessionOf returns the live session named by secret (a cookie's value),
// else ErrNoSession: unknown, forged, expired, idle for SessionIdle,
// logged out, or started from a token revoked since.
func SessionOf(ctx context.Context, st *store.Store, secret, remote string, now time.Time) (Session, error) {
	if !sessionRE.MatchString(secret) {
		return Session{}, ErrNoSession
	}
	ss, err := st.LiveSession(ctx, Hash(secret), now)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, ErrNoSession
	} else if err != nil {
		return Session{}, err
	}
	if now.Sub(ss.SeenAt) >= SessionIdle {
		return Session{}, ErrNoSession
	}
	if ss.TokenHash != "" {
		if _, err := st.TokenByHash(ctx, ss.TokenHash); errors.Is(err, store.ErrNotFound) {
			return Session{}, ErrNoSession
		} else if err != nil {
			return Session{}, err
		}
	}
	r, err := ParseRole(ss.Role)
	if err != nil {
		return Session{}, err
	}
	return Session{Identity: Identity{Name: ss.Actor, Role: r, Via: ViaDashboard, Remote: remote}, Secret: secret, actionHash: ss.ActionHash}, nil
}

// UseSession is SessionOf for a request of the person (a page, a form, a
// new live view): it also counts as activity, which keeps the session from
// its idle end. A live view's periodic checks use SessionOf: a tab left
// open is not activity.
func UseSession(ctx context.Context, st *store.Store, secret, remote string, now time.Time) (Session, error) {
	s, err := SessionOf(ctx, st, secret, remote, now)
	if err != nil {
		return s, err
	}
	return s, st.TouchSession(ctx, Hash(secret), now)
}

// Logout ends the session named by secret in the store: the cookie, if kept
// or copied, opens nothing any more.
func Logout(ctx context.Context, st *store.Store, secret string, now time.Time) error {
	if !sessionRE.MatchString(secret) {
		return nil
	}
	return st.EndSession(ctx, Hash(secret), now)
}

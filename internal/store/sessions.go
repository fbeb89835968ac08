package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LoginLink is a one-time dashboard login link as stored: the SHA-256 of
// its secret, who it logs in and until when. It is used at most once.
type LoginLink struct {
	Hash      string
	Actor     string
	Role      string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// Errors of UseLoginLink besides ErrNotFound (an unknown link). Both wrap
// ErrConflict.
var (
	ErrLinkUsed    error = &kindError{"this login link was used already: links work once; run `cutover dashboard` for a new one", ErrConflict}
	ErrLinkExpired error = &kindError{"this login link has expired: links work for 5 minutes; run `cutover dashboard` for a new one", ErrConflict}
)

// CreateLoginLink stores l. Hash, Actor, Role and ExpiresAt are required.
func (s *Store) CreateLoginLink(ctx context.Context, l LoginLink) error {
	if l.Hash == "" || l.Actor == "" || l.Role == "" || l.ExpiresAt.IsZero() {
		return errors.New("store: a login link needs a hash, an actor, a role and an expiry")
	}
	return s.Tx(ctx, func(tx *Tx) error {
		_, err := tx.q.ExecContext(ctx, `INSERT INTO dashboard_links (hash, actor, role, created_at, expires_at, used_at)
			VALUES (?, ?, ?, ?, ?, NULL)`, l.Hash, l.Actor, l.Role, formatTime(nowIfZero(l.CreatedAt)), formatTime(l.ExpiresAt))
		if err != nil {
			return fmt.Errorf("store: create login link: %w", err)
		}
		return nil
	})
}

// UseLoginLink marks the link whose secret hashes to hash used at now and
// returns it, in one transaction, so two concurrent uses cannot both
// succeed. An unknown link wraps ErrNotFound; a used one is ErrLinkUsed; one
// past its expiry is ErrLinkExpired (and stays unused).
func (s *Store) UseLoginLink(ctx context.Context, hash string, now time.Time) (LoginLink, error) {
	var l LoginLink
	err := s.Tx(ctx, func(tx *Tx) error {
		var created, expires string
		var used sql.NullString
		err := tx.q.QueryRowContext(ctx, `SELECT actor, role, created_at, expires_at, used_at FROM dashboard_links WHERE hash = ?`, hash).
			Scan(&l.Actor, &l.Role, &created, &expires, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: no such login link: %w", ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("store: read login link: %w", err)
		}
		l.Hash = hash
		if l.CreatedAt, err = parseTime(created); err != nil {
			return err
		}
		if l.ExpiresAt, err = parseTime(expires); err != nil {
			return err
		}
		if used.Valid {
			return ErrLinkUsed
		}
		if !now.Before(l.ExpiresAt) {
			return ErrLinkExpired
		}
		res, err := tx.q.ExecContext(ctx, `UPDATE dashboard_links SET used_at = ? WHERE hash = ? AND used_at IS NULL`, formatTime(now), hash)
		if err != nil {
			return fmt.Errorf("store: use login link: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrLinkUsed
		}
		u := now.UTC()
		l.UsedAt = &u
		return nil
	})
	return l, err
}

// Session is a dashboard browser session as stored: the SHA-256 of its
// secret (the cookie), who it is and how they logged in. TokenHash is the
// hash of the API token a token login used ("" for a login link): the
// session ends with that token's revocation.
type Session struct {
	Hash      string
	Actor     string
	Role      string
	Via       string
	TokenHash string
	// ActionHash is the hash of the session's action key, which its
	// forms send (empty for a session from before the keys).
	ActionHash string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	EndedAt    *time.Time
	// SeenAt is when the session was last used (TouchSession); CreatedAt
	// until then.
	SeenAt time.Time
}

// CreateSession stores a live session. Hash, Actor, Role, Via and ExpiresAt
// are required.
func (s *Store) CreateSession(ctx context.Context, ss Session) error {
	if ss.Hash == "" || ss.Actor == "" || ss.Role == "" || ss.Via == "" || ss.ExpiresAt.IsZero() {
		return errors.New("store: a session needs a hash, an actor, a role, a channel and an expiry")
	}
	return s.Tx(ctx, func(tx *Tx) error {
		_, err := tx.q.ExecContext(ctx, `INSERT INTO dashboard_sessions (hash, actor, role, via, token_hash, action_hash, created_at, expires_at, ended_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)`, ss.Hash, ss.Actor, ss.Role, ss.Via, ss.TokenHash, ss.ActionHash,
			formatTime(nowIfZero(ss.CreatedAt)), formatTime(ss.ExpiresAt))
		if err != nil {
			return fmt.Errorf("store: create session: %w", err)
		}
		return nil
	})
}

// LiveSession returns the session whose secret hashes to hash if it has not
// ended and has not expired at now, else an error wrapping ErrNotFound.
func (s *Store) LiveSession(ctx context.Context, hash string, now time.Time) (Session, error) {
	ss := Session{Hash: hash}
	var created, expires string
	var ended, seen sql.NullString
	err := s.auto.q.QueryRowContext(ctx, `SELECT actor, role, via, token_hash, action_hash, created_at, expires_at, ended_at, seen_at
		FROM dashboard_sessions WHERE hash = ?`, hash).Scan(&ss.Actor, &ss.Role, &ss.Via, &ss.TokenHash, &ss.ActionHash, &created, &expires, &ended, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("store: no such session: %w", ErrNotFound)
	} else if err != nil {
		return Session{}, fmt.Errorf("store: read session: %w", err)
	}
	if ss.CreatedAt, err = parseTime(created); err != nil {
		return Session{}, err
	}
	if ss.ExpiresAt, err = parseTime(expires); err != nil {
		return Session{}, err
	}
	ss.SeenAt = ss.CreatedAt
	if seen.Valid {
		if ss.SeenAt, err = parseTime(seen.String); err != nil {
			return Session{}, err
		}
	}
	if ended.Valid || !now.Before(ss.ExpiresAt) {
		return Session{}, fmt.Errorf("store: the session has ended: %w", ErrNotFound)
	}
	return ss, nil
}

// EndSession ends the session whose secret hashes to hash (a logout); an
// unknown or ended session changes nothing.
func (s *Store) EndSession(ctx context.Context, hash string, now time.Time) error {
	return s.setSessionTime(ctx, "ended_at", hash, now)
}

// TouchSession records that the live session whose secret hashes to hash
// was used at now.
func (s *Store) TouchSession(ctx context.Context, hash string, now time.Time) error {
	return s.setSessionTime(ctx, "seen_at", hash, now)
}

// setSessionTime sets column (ended_at or seen_at) of a session not ended.
func (s *Store) setSessionTime(ctx context.Context, column, hash string, now time.Time) error {
	return s.Tx(ctx, func(tx *Tx) error {
		_, err := tx.q.ExecContext(ctx, `UPDATE dashboard_sessions SET `+column+` = ? WHERE hash = ? AND ended_at IS NULL`, formatTime(now), hash)
		if err != nil {
			return fmt.Errorf("store: set session %s: %w", column, err)
		}
		return nil
	})
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Token is an API token as stored: its name, role and the SHA-256 of its
// secret, never the secret itself.
type Token struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Hash      string     `json:"-"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// CreateToken stores a live token. Name, Role and Hash are required; the
// store does not interpret the role. A live token of the same name is
// ErrConflict.
func (s *Store) CreateToken(ctx context.Context, t Token) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.CreateToken(ctx, t) })
}

// CreateToken is Store.CreateToken inside the transaction.
func (tx *Tx) CreateToken(ctx context.Context, t Token) error {
	if t.Name == "" || t.Role == "" || t.Hash == "" {
		return errors.New("store: a token needs a name, a role and a hash")
	}
	if _, err := tx.liveToken(ctx, `name = ?`, t.Name); err == nil {
		return &kindError{fmt.Sprintf("a token named %q already exists (revoke it first, or choose another name)", t.Name), ErrConflict}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	_, err := tx.q.ExecContext(ctx, `INSERT INTO api_tokens (name, role, hash, created_by, created_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, NULL)`, t.Name, t.Role, t.Hash, t.CreatedBy, formatTime(nowIfZero(t.CreatedAt)))
	if err != nil {
		return fmt.Errorf("store: create token %q: %w", t.Name, err)
	}
	return nil
}

// TokenByHash returns the live token whose secret hashes to hash, or an
// error wrapping ErrNotFound (also for a revoked token).
func (s *Store) TokenByHash(ctx context.Context, hash string) (Token, error) {
	return s.auto.liveToken(ctx, `hash = ?`, hash)
}

// ListTokens returns the live tokens by name; with revoked, also the revoked ones.
func (s *Store) ListTokens(ctx context.Context, revoked bool) ([]Token, error) {
	where := `revoked_at IS NULL`
	if revoked {
		where = `1 = 1`
	}
	return s.auto.queryTokens(ctx, tokenColumns+` WHERE `+where+` ORDER BY name, id`)
}

// RevokeToken revokes the live token called name for good and returns it;
// an unknown name is ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, name string) (Token, error) {
	var t Token
	err := s.Tx(ctx, func(tx *Tx) error {
		var err error
		if t, err = tx.liveToken(ctx, `name = ?`, name); err != nil {
			return err
		}
		now := time.Now().UTC()
		if _, err := tx.q.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL`,
			formatTime(now), name); err != nil {
			return fmt.Errorf("store: revoke token %q: %w", name, err)
		}
		t.RevokedAt = &now
		return nil
	})
	return t, err
}

const tokenColumns = `SELECT name, role, hash, created_by, created_at, revoked_at FROM api_tokens`

func (tx *Tx) liveToken(ctx context.Context, cond string, arg string) (Token, error) {
	ts, err := tx.queryTokens(ctx, tokenColumns+` WHERE revoked_at IS NULL AND `+cond, arg)
	if err != nil {
		return Token{}, err
	}
	if len(ts) == 0 {
		if strings.HasPrefix(cond, "name") {
			return Token{}, &kindError{fmt.Sprintf("there is no live token named %q (`cutover token list` lists them)", arg), ErrNotFound}
		}
		return Token{}, &kindError{"there is no live token with that secret", ErrNotFound}
	}
	return ts[0], nil
}

func (tx *Tx) queryTokens(ctx context.Context, query string, args ...any) ([]Token, error) {
	rows, err := tx.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var t Token
		var created string
		var revoked sql.NullString
		if err := rows.Scan(&t.Name, &t.Role, &t.Hash, &t.CreatedBy, &created, &revoked); err != nil {
			return nil, fmt.Errorf("store: read tokens: %w", err)
		}
		if t.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		if t.RevokedAt, err = parseOptionalTime(revoked); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read tokens: %w", err)
	}
	return out, nil
}

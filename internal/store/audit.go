package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// AuditEntry is one record of the audit log: who did what to which target,
// from where, when, and how it ended. The log is append-only: the store has
// no call that changes or removes an entry, and the table's triggers refuse
// any UPDATE or DELETE whatever writes the file.
type AuditEntry struct {
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`  // token name, OS user, or the webhook source
	Role    string    `json:"role"`   // the actor's role, empty for webhooks
	Via     string    `json:"via"`    // api, cli or webhook
	Remote  string    `json:"remote"` // the client's address ("local" for the CLI)
	Action  string    `json:"action"` // trigger, approve, reject, cancel, deploy, ...
	Target  string    `json:"target"` // execution id, environment, token name, ...
	Outcome string    `json:"outcome"`
}

// AppendAudit adds e (Time defaults to now; Seq is ignored) and returns its
// sequence number. Actor, Via and Action are required.
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) (int64, error) {
	if e.Actor == "" || e.Via == "" || e.Action == "" {
		return 0, errors.New("store: an audit entry needs an actor, a channel (via) and an action")
	}
	var seq int64
	err := s.Tx(ctx, func(tx *Tx) error {
		res, err := tx.q.ExecContext(ctx, `INSERT INTO audit_log (time, actor, role, via, remote, action, target, outcome)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, formatTime(nowIfZero(e.Time)), e.Actor, e.Role, e.Via, e.Remote,
			e.Action, e.Target, e.Outcome)
		if err != nil {
			return fmt.Errorf("store: append audit entry %s %s: %w", e.Action, e.Target, err)
		}
		seq, err = res.LastInsertId()
		return err
	})
	return seq, err
}

// ListAudit returns the entries recorded at or after since (all when zero),
// oldest first, at most limit of the newest (no cap when limit <= 0).
func (s *Store) ListAudit(ctx context.Context, since time.Time, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.auto.q.QueryContext(ctx, `SELECT seq, time, actor, role, via, remote, action, target, outcome FROM (
		SELECT * FROM audit_log WHERE time >= ? ORDER BY seq DESC LIMIT ?) ORDER BY seq`, formatTime(since), limit)
	if err != nil {
		return nil, fmt.Errorf("store: read the audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at string
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Role, &e.Via, &e.Remote, &e.Action, &e.Target, &e.Outcome); err != nil {
			return nil, fmt.Errorf("store: read the audit log: %w", err)
		}
		if e.Time, err = parseTime(at); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read the audit log: %w", err)
	}
	return out, nil
}

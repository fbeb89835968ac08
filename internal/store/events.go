package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event is one entry of the append-only log of what cutover did.
type Event struct {
	// Seq orders all events; it is assigned by AppendEvent, increases in
	// commit order and has no gaps, so a reader can follow the log with AfterSeq.
	Seq         int64           `json:"seq"`
	Time        time.Time       `json:"time"`
	Project     string          `json:"project"`
	Environment string          `json:"environment"`
	Kind        string          `json:"kind"`
	Message     string          `json:"message"`
	Data        json.RawMessage `json:"data,omitempty"`
}

// EventFilter selects events. Empty Project or Environment match any.
type EventFilter struct {
	Project     string
	Environment string
	// AfterSeq returns only events with a larger Seq.
	AfterSeq int64
	// Limit caps the number of events returned; <= 0 means no cap.
	Limit int
}

// AppendEvent adds e to the log (Time defaults to now; Seq is ignored) and
// returns its sequence number.
func (s *Store) AppendEvent(ctx context.Context, e Event) (int64, error) {
	var seq int64
	err := s.Tx(ctx, func(tx *Tx) error {
		var err error
		seq, err = tx.AppendEvent(ctx, e)
		return err
	})
	return seq, err
}

// ListEvents returns the events matching f, oldest first.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]Event, error) {
	return s.auto.ListEvents(ctx, f)
}

// AppendEvent is Store.AppendEvent inside the transaction.
func (tx *Tx) AppendEvent(ctx context.Context, e Event) (int64, error) {
	if e.Kind == "" {
		return 0, errors.New("store: event has no kind")
	}
	data, err := nullJSON("data of event "+e.Kind, e.Data)
	if err != nil {
		return 0, err
	}
	res, err := tx.q.ExecContext(ctx, `INSERT INTO events (time, project, environment, kind, message, data)
		VALUES (?, ?, ?, ?, ?, ?)`, formatTime(nowIfZero(e.Time)), e.Project, e.Environment, e.Kind, e.Message, data)
	if err != nil {
		return 0, fmt.Errorf("store: append event %s: %w", e.Kind, err)
	}
	return res.LastInsertId()
}

// ListEvents is Store.ListEvents inside the transaction.
func (tx *Tx) ListEvents(ctx context.Context, f EventFilter) ([]Event, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := tx.q.QueryContext(ctx, `SELECT seq, time, project, environment, kind, message, data FROM events
		WHERE seq > ?1 AND (?2 = '' OR project = ?2) AND (?3 = '' OR environment = ?3)
		ORDER BY seq LIMIT ?4`, f.AfterSeq, f.Project, f.Environment, limit)
	if err != nil {
		return nil, fmt.Errorf("store: read events: %w", err)
	}
	defer rows.Close()
	var events []Event
	for rows.Next() {
		var e Event
		var t string
		var data sql.NullString
		if err := rows.Scan(&e.Seq, &t, &e.Project, &e.Environment, &e.Kind, &e.Message, &data); err != nil {
			return nil, fmt.Errorf("store: read events: %w", err)
		}
		if e.Time, err = parseTime(t); err != nil {
			return nil, err
		}
		if data.Valid {
			e.Data = json.RawMessage(data.String)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read events: %w", err)
	}
	return events, nil
}

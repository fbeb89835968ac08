package store

import (
	"context"
	"fmt"
	"time"
)

// LogLine is one line of an action's output in an execution.
type LogLine struct {
	// Seq orders the lines of one execution, across its actions, from 1 and
	// without gaps in commit order: a follower resumes after the last it saw.
	Seq    int64     `json:"seq"`
	Action string    `json:"action"`
	Time   time.Time `json:"time"`
	Line   string    `json:"line"`
}

// AppendLog adds lines to the log of action in execution execID, in one
// transaction, with consecutive sequence numbers. Lines are stored as given:
// the caller masks secrets and splits output into lines first. The
// execution must be recorded (ErrNotFound otherwise).
func (s *Store) AppendLog(ctx context.Context, execID, action string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	return s.Tx(ctx, func(tx *Tx) error { return tx.AppendLog(ctx, execID, action, lines) })
}

// ListLogs returns the log lines of execution execID with Seq > afterSeq,
// oldest first, at most limit of them (all when limit <= 0). An empty action
// returns the lines of all actions. To follow a log, call it again with the
// last Seq returned.
func (s *Store) ListLogs(ctx context.Context, execID, action string, afterSeq int64, limit int) ([]LogLine, error) {
	return s.auto.ListLogs(ctx, execID, action, afterSeq, limit)
}

// AppendLog is Store.AppendLog inside the transaction.
func (tx *Tx) AppendLog(ctx context.Context, execID, action string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	if action == "" {
		return fmt.Errorf("store: log lines of execution %s name no action", execID)
	}
	if _, err := tx.GetExecution(ctx, execID); err != nil {
		return fmt.Errorf("store: append log of action %s: %w", action, err)
	}
	// Safe under the write lock every Tx holds: no other writer can take the same seq.
	var last int64
	if err := tx.q.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM execution_logs WHERE execution_id = ?`,
		execID).Scan(&last); err != nil {
		return fmt.Errorf("store: append log of %s/%s: %w", execID, action, err)
	}
	now := formatTime(time.Now())
	for i, line := range lines {
		if _, err := tx.q.ExecContext(ctx, `INSERT INTO execution_logs (execution_id, seq, action, time, line)
			VALUES (?, ?, ?, ?, ?)`, execID, last+int64(i)+1, action, now, line); err != nil {
			return fmt.Errorf("store: append log of %s/%s: %w", execID, action, err)
		}
	}
	return nil
}

// ListLogs is Store.ListLogs inside the transaction.
func (tx *Tx) ListLogs(ctx context.Context, execID, action string, afterSeq int64, limit int) ([]LogLine, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := tx.q.QueryContext(ctx, `SELECT seq, action, time, line FROM execution_logs
		WHERE execution_id = ?1 AND seq > ?2 AND (?3 = '' OR action = ?3) ORDER BY seq LIMIT ?4`,
		execID, afterSeq, action, limit)
	if err != nil {
		return nil, fmt.Errorf("store: read log of execution %s: %w", execID, err)
	}
	defer rows.Close()
	var out []LogLine
	for rows.Next() {
		var l LogLine
		var t string
		if err := rows.Scan(&l.Seq, &l.Action, &t, &l.Line); err != nil {
			return nil, fmt.Errorf("store: read log of execution %s: %w", execID, err)
		}
		if l.Time, err = parseTime(t); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read log of execution %s: %w", execID, err)
	}
	return out, nil
}

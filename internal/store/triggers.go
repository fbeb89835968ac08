package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cutoverdev/cutover/internal/short"
)

// ErrDuplicate is wrapped when a webhook delivery was already accepted: its
// execution exists and nothing new is queued.
var ErrDuplicate = errors.New("delivery already accepted")

// Delivery names one webhook delivery: its sender ("github", "generic") and
// the sender's id for it (X-GitHub-Delivery). An empty ID is not deduplicated.
type Delivery struct {
	Source string
	ID     string
}

// QueueExecution records e as queued (e.Status must be empty or queued) and,
// when d has an ID, the delivery that caused it, in one transaction: once
// it returns nil the trigger survives a crash. A delivery already recorded
// queues nothing; the error wraps ErrDuplicate and the returned ID is the
// execution the first delivery queued. supersede lists queued executions
// to mark superseded in the same transaction (those still queued; one
// claimed meanwhile is left to its runner).
func (s *Store) QueueExecution(ctx context.Context, e Execution, d Delivery, supersede []string) (string, error) {
	if e.Status != "" && e.Status != ExecutionQueued {
		return "", fmt.Errorf("store: execution %s: a queued trigger must have status queued, not %s", e.ID, e.Status)
	}
	existing := ""
	err := s.Tx(ctx, func(tx *Tx) error {
		if d.ID != "" {
			var err error
			existing, err = tx.DeliveryExecution(ctx, d)
			if err == nil {
				return fmt.Errorf("store: %s delivery %s queued execution %s: %w", d.Source, d.ID, existing, ErrDuplicate)
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		for _, id := range supersede {
			if _, err := tx.q.ExecContext(ctx, `UPDATE executions SET status = 'superseded', error = ?, updated_at = ?,
				finished_at = ?, generation = generation + 1 WHERE id = ? AND status = 'queued'`,
				"superseded by "+short.SHA(e.Commit)+" before it started", formatTime(time.Now()), formatTime(time.Now()), id); err != nil {
				return fmt.Errorf("store: supersede execution %s: %w", id, err)
			}
		}
		if err := tx.CreateExecution(ctx, e); err != nil {
			return err
		}
		if d.ID == "" {
			return nil
		}
		_, err := tx.q.ExecContext(ctx, `INSERT INTO triggers (source, delivery, project, execution_id, received_at)
			VALUES (?, ?, ?, ?, ?)`, d.Source, d.ID, e.Project, e.ID, formatTime(time.Now()))
		if err != nil {
			return fmt.Errorf("store: record %s delivery %s: %w", d.Source, d.ID, err)
		}
		return nil
	})
	if errors.Is(err, ErrDuplicate) {
		return existing, err
	}
	if err != nil {
		return "", err
	}
	return e.ID, nil
}

// DeliveryExecution returns the execution delivery d queued, or an error
// wrapping ErrNotFound when no such delivery was accepted.
func (tx *Tx) DeliveryExecution(ctx context.Context, d Delivery) (string, error) {
	var id string
	err := tx.q.QueryRowContext(ctx, `SELECT execution_id FROM triggers WHERE source = ? AND delivery = ?`, d.Source, d.ID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("store: %s delivery %s: %w", d.Source, d.ID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: read triggers: %w", err)
	}
	return id, nil
}

// Process is a process group an execution's command runs in.
type Process struct {
	Execution string
	PGID      int
	// StartTicks is the group leader's start time (proc.StartTime): with
	// the PGID it names the group for good, not a later reuse of the number.
	StartTicks uint64
	Host       string
	StartedAt  time.Time
}

// AddProcess records a running command's process group; the runner removes
// it when the command ends (RemoveProcess).
func (s *Store) AddProcess(ctx context.Context, p Process) error {
	err := s.Tx(ctx, func(tx *Tx) error {
		_, err := tx.q.ExecContext(ctx, `INSERT OR REPLACE INTO execution_processes (execution_id, pgid, start_ticks, host, started_at)
			VALUES (?, ?, ?, ?, ?)`, p.Execution, p.PGID, int64(p.StartTicks), p.Host, formatTime(nowIfZero(p.StartedAt)))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: record process group %d of execution %s: %w", p.PGID, p.Execution, err)
	}
	return nil
}

// RemoveProcess forgets a process group once its command ended.
func (s *Store) RemoveProcess(ctx context.Context, execution string, pgid int) error {
	err := s.Tx(ctx, func(tx *Tx) error {
		_, err := tx.q.ExecContext(ctx, `DELETE FROM execution_processes WHERE execution_id = ? AND pgid = ?`, execution, pgid)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: forget process group %d of execution %s: %w", pgid, execution, err)
	}
	return nil
}

// Processes returns the process groups recorded for an execution.
func (s *Store) Processes(ctx context.Context, execution string) ([]Process, error) {
	rows, err := s.auto.q.QueryContext(ctx, `SELECT execution_id, pgid, start_ticks, host, started_at FROM execution_processes
		WHERE execution_id = ? ORDER BY started_at`, execution)
	if err != nil {
		return nil, fmt.Errorf("store: read processes of execution %s: %w", execution, err)
	}
	defer rows.Close()
	var out []Process
	for rows.Next() {
		var p Process
		var ticks int64
		var started string
		if err := rows.Scan(&p.Execution, &p.PGID, &ticks, &p.Host, &started); err != nil {
			return nil, fmt.Errorf("store: read processes of execution %s: %w", execution, err)
		}
		p.StartTicks = uint64(ticks)
		if p.StartedAt, err = parseTime(started); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Approval statuses. Only a pending approval can be decided, once.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
	ApprovalExpired  = "expired"
)

// Approval is a manual gate of an execution: one per approval action of a
// stage (two stages may each name an action "approve").
type Approval struct {
	Execution string `json:"execution"`
	Stage     string `json:"stage"`
	Action    string `json:"action"`
	Status    string `json:"status"`
	// RequestedAt defaults to now; after Expires it can no longer be decided.
	RequestedAt time.Time `json:"requested_at"`
	Expires     time.Time `json:"expires"`
	DecidedBy   string    `json:"decided_by,omitempty"`
	Comment     string    `json:"comment,omitempty"`
	// DecidedAt is set when it is approved, rejected or marked expired.
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	// Evidence is what the approver is shown, opaque to the store.
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// approvalExpiredError is returned by Tx.DecideApproval for an approval past
// its deadline, which it marks expired: Store.DecideApproval commits that
// mark although the decision fails.
type approvalExpiredError struct{ msg string }

func (e *approvalExpiredError) Error() string { return e.msg }
func (e *approvalExpiredError) Unwrap() error { return ErrConflict }

// RequestApproval records a pending approval (Status, DecidedBy, Comment and
// DecidedAt are ignored) for an active execution. Asking again for the same
// execution, stage and action changes nothing, whatever the stored status,
// so a resumed executor may simply call it again, then StageApproval. The
// same action name in another stage is another approval: its decision
// decides nothing here.
func (s *Store) RequestApproval(ctx context.Context, a Approval) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.RequestApproval(ctx, a) })
}

// DecideApproval approves or rejects the pending approval of action in
// execution execID, recording who decided, the comment and the time, and
// returns it. A decided approval cannot be decided again, nor one whose
// execution has finished (both ErrConflict). One past its deadline is marked
// expired and the error wraps ErrConflict.
func (s *Store) DecideApproval(ctx context.Context, execID, action string, approve bool, who, comment string) (Approval, error) {
	return s.decide(ctx, func(tx *Tx) (Approval, error) { return tx.DecideApproval(ctx, execID, action, approve, who, comment) })
}

// DecideStageApproval is DecideApproval of the approval of action in stage:
// the one whose rules the caller checked (pipeline.Decide). By action name
// alone, the approval decided was whichever of that name GetApproval
// preferred, which need not be the one checked when two stages name an
// action alike.
func (s *Store) DecideStageApproval(ctx context.Context, execID, stage, action string, approve bool, who, comment string) (Approval, error) {
	return s.decide(ctx, func(tx *Tx) (Approval, error) {
		return tx.decideApproval(ctx, execID, action, approve, who, comment, func() (Approval, error) {
			return tx.stageApproval(ctx, execID, stage, action)
		})
	})
}

func (s *Store) decide(ctx context.Context, decide func(tx *Tx) (Approval, error)) (Approval, error) {
	var a Approval
	var expired error
	err := s.Tx(ctx, func(tx *Tx) error {
		var err error
		a, err = decide(tx)
		if _, ok := errors.AsType[*approvalExpiredError](err); ok {
			expired = err
			return nil // keep the expired mark
		}
		return err
	})
	if err == nil && expired != nil {
		return a, expired
	}
	return a, err
}

// GetApproval returns the approval of action in execution execID (the
// pending one, else the one requested last, when stages share the action's
// name), or an error wrapping ErrNotFound.
func (s *Store) GetApproval(ctx context.Context, execID, action string) (Approval, error) {
	return s.auto.GetApproval(ctx, execID, action)
}

// StageApproval returns the approval of action in stage of execution
// execID, or an error wrapping ErrNotFound: what a gate waits on.
func (s *Store) StageApproval(ctx context.Context, execID, stage, action string) (Approval, error) {
	return s.auto.stageApproval(ctx, execID, stage, action)
}

// ListApprovals returns the approvals of an execution, oldest first.
func (s *Store) ListApprovals(ctx context.Context, execID string) ([]Approval, error) {
	return s.auto.ListApprovals(ctx, execID)
}

// PendingApprovals returns the pending approvals of a project's active
// executions (of all projects when project is empty), oldest first.
// Approvals past their deadline are included until ExpireApprovals marks them.
func (s *Store) PendingApprovals(ctx context.Context, project string) ([]Approval, error) {
	return s.auto.PendingApprovals(ctx, project)
}

// ExpireApprovals marks the pending approvals whose deadline is at or before
// now as expired and returns them; the engine then fails their executions.
func (s *Store) ExpireApprovals(ctx context.Context, now time.Time) ([]Approval, error) {
	var out []Approval
	err := s.Tx(ctx, func(tx *Tx) error {
		var err error
		out, err = tx.ExpireApprovals(ctx, now)
		return err
	})
	return out, err
}

// RequestApproval is Store.RequestApproval inside the transaction.
func (tx *Tx) RequestApproval(ctx context.Context, a Approval) error {
	switch {
	case a.Execution == "" || a.Action == "":
		return errors.New("store: an approval needs an execution and an action")
	case a.Expires.IsZero():
		return fmt.Errorf("store: approval action %s of execution %s has no deadline", a.Action, a.Execution)
	}
	if _, err := tx.stageApproval(ctx, a.Execution, a.Stage, a.Action); err == nil {
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	e, err := tx.GetExecution(ctx, a.Execution)
	if err != nil {
		return fmt.Errorf("store: request approval action %s: %w", a.Action, err)
	}
	if !ExecutionActive(e.Status) {
		return fmt.Errorf("store: execution %s is %s; an approval can only be requested while it runs: %w",
			e.ID, e.Status, ErrConflict)
	}
	evidence, err := nullJSON(fmt.Sprintf("evidence of approval %s/%s", a.Execution, a.Action), a.Evidence)
	if err != nil {
		return err
	}
	a.Status, a.DecidedBy, a.Comment, a.DecidedAt = ApprovalPending, "", "", nil
	a.RequestedAt, a.Expires = nowIfZero(a.RequestedAt), a.Expires.UTC()
	if !a.Expires.After(a.RequestedAt) {
		return fmt.Errorf("store: approval action %s of execution %s expires at %s, before it is requested (%s)",
			a.Action, a.Execution, a.Expires.Format(time.RFC3339), a.RequestedAt.Format(time.RFC3339))
	}
	_, err = tx.q.ExecContext(ctx, `INSERT INTO approvals (execution_id, stage, action, status, requested_at,
		expires_at, decided_by, comment, decided_at, evidence) VALUES (?, ?, ?, ?, ?, ?, '', '', NULL, ?)`,
		a.Execution, a.Stage, a.Action, a.Status, formatTime(a.RequestedAt), formatTime(a.Expires), evidence)
	if err != nil {
		return fmt.Errorf("store: request approval action %s of execution %s: %w", a.Action, a.Execution, err)
	}
	return nil
}

// DecideApproval is Store.DecideApproval inside the transaction. For an
// approval past its deadline it writes the expired mark and returns an
// error; the mark stays only if the caller commits anyway.
func (tx *Tx) DecideApproval(ctx context.Context, execID, action string, approve bool, who, comment string) (Approval, error) {
	return tx.decideApproval(ctx, execID, action, approve, who, comment, func() (Approval, error) {
		return tx.GetApproval(ctx, execID, action)
	})
}

func (tx *Tx) decideApproval(ctx context.Context, execID, action string, approve bool, who, comment string, find func() (Approval, error)) (Approval, error) {
	if strings.TrimSpace(who) == "" {
		return Approval{}, fmt.Errorf("store: deciding approval action %s of execution %s needs the name of who decides", action, execID)
	}
	a, err := find()
	if err != nil {
		return Approval{}, err
	}
	if a.Status != ApprovalPending {
		return a, fmt.Errorf("store: approval action %s of execution %s was already %s%s; a decision is final: %w",
			action, execID, a.Status, decidedBy(a), ErrConflict)
	}
	e, err := tx.GetExecution(ctx, execID)
	if err != nil {
		return Approval{}, err
	}
	if !ExecutionActive(e.Status) {
		return a, fmt.Errorf("store: execution %s is %s; there is nothing left to approve: %w", execID, e.Status, ErrConflict)
	}
	now := time.Now().UTC()
	if !now.Before(a.Expires) {
		if err := tx.setDecision(ctx, &a, ApprovalExpired, "", "", now); err != nil {
			return Approval{}, err
		}
		return a, &approvalExpiredError{msg: fmt.Sprintf("store: approval action %s of execution %s expired at %s; "+
			"retry the execution to ask again", action, execID, a.Expires.Format(time.RFC3339))}
	}
	status := ApprovalRejected
	if approve {
		status = ApprovalApproved
	}
	if err := tx.setDecision(ctx, &a, status, who, comment, now); err != nil {
		return Approval{}, err
	}
	return a, nil
}

func decidedBy(a Approval) string {
	var b strings.Builder
	if a.DecidedBy != "" {
		fmt.Fprintf(&b, " by %s", a.DecidedBy)
	}
	if a.DecidedAt != nil {
		fmt.Fprintf(&b, " at %s", a.DecidedAt.Format(time.RFC3339))
	}
	if a.Comment != "" {
		fmt.Fprintf(&b, " (%q)", a.Comment)
	}
	return b.String()
}

func (tx *Tx) setDecision(ctx context.Context, a *Approval, status, who, comment string, now time.Time) error {
	_, err := tx.q.ExecContext(ctx, `UPDATE approvals SET status = ?, decided_by = ?, comment = ?, decided_at = ?
		WHERE execution_id = ? AND stage = ? AND action = ? AND status = 'pending'`,
		status, who, comment, formatTime(now), a.Execution, a.Stage, a.Action)
	if err != nil {
		return fmt.Errorf("store: decide approval action %s of execution %s: %w", a.Action, a.Execution, err)
	}
	a.Status, a.DecidedBy, a.Comment, a.DecidedAt = status, who, comment, &now
	return nil
}

// GetApproval is Store.GetApproval inside the transaction.
func (tx *Tx) GetApproval(ctx context.Context, execID, action string) (Approval, error) {
	as, err := tx.queryApprovals(ctx, approvalColumns+` WHERE execution_id = ? AND action = ?
		ORDER BY status = 'pending' DESC, requested_at DESC, stage`, execID, action)
	if err != nil {
		return Approval{}, err
	}
	if len(as) == 0 {
		return Approval{}, fmt.Errorf("store: execution %s has no approval action %s (none was requested): %w", execID, action, ErrNotFound)
	}
	return as[0], nil
}

func (tx *Tx) stageApproval(ctx context.Context, execID, stage, action string) (Approval, error) {
	as, err := tx.queryApprovals(ctx, approvalColumns+` WHERE execution_id = ? AND stage = ? AND action = ?`, execID, stage, action)
	if err != nil {
		return Approval{}, err
	}
	if len(as) == 0 {
		return Approval{}, fmt.Errorf("store: execution %s has no approval action %s in stage %s (none was requested): %w", execID, action, stage, ErrNotFound)
	}
	return as[0], nil
}

// ListApprovals is Store.ListApprovals inside the transaction.
func (tx *Tx) ListApprovals(ctx context.Context, execID string) ([]Approval, error) {
	return tx.queryApprovals(ctx, approvalColumns+` WHERE execution_id = ? ORDER BY requested_at, action`, execID)
}

// PendingApprovals is Store.PendingApprovals inside the transaction.
func (tx *Tx) PendingApprovals(ctx context.Context, project string) ([]Approval, error) {
	return tx.queryApprovals(ctx, approvalColumns+` a WHERE a.status = 'pending' AND EXISTS (
		SELECT 1 FROM executions e WHERE e.id = a.execution_id AND e.status IN ('queued', 'running', 'waiting')
		AND (?1 = '' OR e.project = ?1)) ORDER BY a.requested_at, a.execution_id, a.action`, project)
}

// ExpireApprovals is Store.ExpireApprovals inside the transaction.
func (tx *Tx) ExpireApprovals(ctx context.Context, now time.Time) ([]Approval, error) {
	due, err := tx.queryApprovals(ctx, approvalColumns+` WHERE status = 'pending' AND expires_at <= ?
		ORDER BY requested_at, execution_id, action`, formatTime(now))
	if err != nil {
		return nil, err
	}
	for i := range due {
		if err := tx.setDecision(ctx, &due[i], ApprovalExpired, "", "", now.UTC()); err != nil {
			return nil, err
		}
	}
	return due, nil
}

const approvalColumns = `SELECT execution_id, stage, action, status, requested_at, expires_at, decided_by, comment,
	decided_at, evidence FROM approvals`

func (tx *Tx) queryApprovals(ctx context.Context, query string, args ...any) ([]Approval, error) {
	rows, err := tx.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read approvals: %w", err)
	}
	defer rows.Close()
	var as []Approval
	for rows.Next() {
		var a Approval
		var requested, expires string
		var decided, evidence sql.NullString
		if err := rows.Scan(&a.Execution, &a.Stage, &a.Action, &a.Status, &requested, &expires, &a.DecidedBy,
			&a.Comment, &decided, &evidence); err != nil {
			return nil, fmt.Errorf("store: read approvals: %w", err)
		}
		if a.RequestedAt, err = parseTime(requested); err != nil {
			return nil, err
		}
		if a.Expires, err = parseTime(expires); err != nil {
			return nil, err
		}
		if a.DecidedAt, err = parseOptionalTime(decided); err != nil {
			return nil, err
		}
		if evidence.Valid {
			a.Evidence = json.RawMessage(evidence.String)
		}
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read approvals: %w", err)
	}
	return as, nil
}

package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Execution statuses. The store interprets them only to keep the timestamps:
// StartedAt is set when an execution first becomes running or waiting,
// FinishedAt when it reaches a final status (cleared if it becomes active again).
const (
	ExecutionQueued     = "queued"
	ExecutionRunning    = "running"
	ExecutionWaiting    = "waiting" // at an approval gate or a stage boundary
	ExecutionSucceeded  = "succeeded"
	ExecutionFailed     = "failed"
	ExecutionCancelled  = "cancelled"
	ExecutionSuperseded = "superseded" // replaced by a newer commit while waiting
)

// Execution triggers, what started an execution. The store does not check
// them: a trigger it does not list is stored as given.
const (
	TriggerManual      = "manual"
	TriggerPush        = "push"
	TriggerPullRequest = "pull_request"
	TriggerPoll        = "poll"
	TriggerRetry       = "retry"
	TriggerWebhook     = "webhook"
	TriggerSchedule    = "schedule"
)

// ExecutionActive reports whether status is one the pipeline engine still
// has work for: queued, running or waiting.
func ExecutionActive(status string) bool {
	return status == ExecutionQueued || status == ExecutionRunning || status == ExecutionWaiting
}

// Execution is one run of a pipeline on one commit. The executor persists it
// before and after each action, so that another process can show it, and a
// restarted daemon can resume it.
type Execution struct {
	// ID is chosen by the caller, e.g. "x-20261124-150405-ab12".
	ID       string `json:"id"`
	Project  string `json:"project"`
	Pipeline string `json:"pipeline"`
	// Trigger is one of the Trigger* constants.
	Trigger string `json:"trigger"`
	// Branch and Commit cannot change once set; they may be left empty on
	// create (a queued execution whose branch is not resolved yet) and set once.
	Branch string `json:"branch,omitempty"`
	Commit string `json:"commit,omitempty"`
	// Status is one of the Execution* constants; empty means queued on create.
	Status string `json:"status"`
	// Variables are the execution's variables, opaque to the store.
	Variables json.RawMessage `json:"variables,omitempty"`
	// Stages are the executor's stage and action states, opaque to the store.
	Stages json.RawMessage `json:"stages,omitempty"`
	// Error says in plain words why the execution failed.
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// StartedAt is set by the store (zero while queued).
	StartedAt time.Time `json:"started_at,omitzero"`
	// UpdatedAt is set by the store on every write.
	UpdatedAt time.Time `json:"updated_at"`
	// FinishedAt is set by the store when Status becomes final.
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Generation counts the writes of this execution, starting at 1.
	Generation int64 `json:"generation"`
	// OwnerPID and OwnerHost name the process that runs the execution (0
	// and "" while queued): another process must not take over an
	// execution whose owner is alive.
	OwnerPID  int    `json:"owner_pid,omitempty"`
	OwnerHost string `json:"owner_host,omitempty"`
}

// ExecutionFilter selects executions. Empty fields match any.
type ExecutionFilter struct {
	Project  string
	Pipeline string
	Branch   string
	Status   string
	// Limit caps the number returned; <= 0 means no cap.
	Limit int
}

func (e Execution) validate() error {
	switch {
	case e.ID == "":
		return errors.New("store: execution has no ID")
	case e.Project == "" || e.Pipeline == "":
		return fmt.Errorf("store: execution %s: project and pipeline must be set", e.ID)
	case e.Trigger == "":
		return fmt.Errorf("store: execution %s has no trigger", e.ID)
	}
	switch e.Status {
	case ExecutionQueued, ExecutionRunning, ExecutionWaiting, ExecutionSucceeded, ExecutionFailed,
		ExecutionCancelled, ExecutionSuperseded:
		return nil
	}
	return fmt.Errorf("store: execution %s: unknown status %q; use queued, running, waiting, succeeded, failed, "+
		"cancelled or superseded", e.ID, e.Status)
}

// CreateExecution records e with generation 1. CreatedAt defaults to now and
// an empty Status to queued. It fails with ErrConflict when the ID is taken.
func (s *Store) CreateExecution(ctx context.Context, e Execution) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.CreateExecution(ctx, e) })
}

// GetExecution returns the execution with the given ID, or an error wrapping ErrNotFound.
func (s *Store) GetExecution(ctx context.Context, id string) (Execution, error) {
	return s.auto.GetExecution(ctx, id)
}

// UpdateExecution writes Status, Variables, Stages and Error of e (and Branch
// or Commit if they were empty; the other fields must match what is stored)
// and returns the new generation. Unless expectGeneration is AnyGeneration,
// the stored generation must equal it, or nothing changes and the error
// wraps ErrConflict.
func (s *Store) UpdateExecution(ctx context.Context, e Execution, expectGeneration int64) (int64, error) {
	var gen int64
	err := s.Tx(ctx, func(tx *Tx) error {
		var err error
		gen, err = tx.UpdateExecution(ctx, e, expectGeneration)
		return err
	})
	return gen, err
}

// ListExecutions returns a project's executions (of all projects when
// project is empty), newest first, at most limit of them (all when limit <= 0).
func (s *Store) ListExecutions(ctx context.Context, project string, limit int) ([]Execution, error) {
	return s.auto.FindExecutions(ctx, ExecutionFilter{Project: project, Limit: limit})
}

// FindExecutions returns the executions matching f, newest first.
func (s *Store) FindExecutions(ctx context.Context, f ExecutionFilter) ([]Execution, error) {
	return s.auto.FindExecutions(ctx, f)
}

// ActiveExecutions returns a project's queued, running and waiting
// executions (of all projects when project is empty), oldest first: the
// order in which a restarted daemon resumes them.
func (s *Store) ActiveExecutions(ctx context.Context, project string) ([]Execution, error) {
	return s.auto.ActiveExecutions(ctx, project)
}

// CreateExecution is Store.CreateExecution inside the transaction.
func (tx *Tx) CreateExecution(ctx context.Context, e Execution) error {
	if e.Status == "" {
		e.Status = ExecutionQueued
	}
	if err := e.validate(); err != nil {
		return err
	}
	variables, stages, err := executionJSON(e)
	if err != nil {
		return err
	}
	if old, err := tx.GetExecution(ctx, e.ID); err == nil {
		return fmt.Errorf("store: execution %s already exists (pipeline %s of %s, created %s); choose a new ID: %w",
			e.ID, old.Pipeline, old.Project, old.CreatedAt.Format(time.RFC3339), ErrConflict)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	now := time.Now().UTC()
	started, finished := executionTimes(e.Status, sql.NullString{}, nil, now)
	_, err = tx.q.ExecContext(ctx, `INSERT INTO executions (id, project, pipeline, trigger_type, branch, commit_sha,
		status, variables, stages, error, created_at, started_at, updated_at, finished_at, generation, owner_pid, owner_host)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
		e.ID, e.Project, e.Pipeline, e.Trigger, e.Branch, e.Commit, e.Status, variables, stages, e.Error,
		formatTime(nowIfZero(e.CreatedAt)), started, formatTime(now), finished, e.OwnerPID, e.OwnerHost)
	if err != nil {
		return fmt.Errorf("store: record execution %s: %w", e.ID, err)
	}
	return nil
}

// executionTimes returns started_at and finished_at for an execution moving
// to status at now, given what was stored before.
func executionTimes(status string, oldStarted sql.NullString, oldFinished *time.Time, now time.Time) (started, finished sql.NullString) {
	started = oldStarted
	if !started.Valid && (status == ExecutionRunning || status == ExecutionWaiting) {
		started = sql.NullString{String: formatTime(now), Valid: true}
	}
	switch {
	case ExecutionActive(status):
		// Not finished, or resumed: not finished any more.
	case oldFinished != nil:
		finished = sql.NullString{String: formatTime(*oldFinished), Valid: true}
	default:
		finished = sql.NullString{String: formatTime(now), Valid: true}
	}
	return started, finished
}

// UpdateExecution is Store.UpdateExecution inside the transaction.
func (tx *Tx) UpdateExecution(ctx context.Context, e Execution, expectGeneration int64) (int64, error) {
	if err := e.validate(); err != nil {
		return 0, err
	}
	variables, stages, err := executionJSON(e)
	if err != nil {
		return 0, err
	}
	old, err := tx.GetExecution(ctx, e.ID)
	if err != nil {
		return 0, err
	}
	if old.Project != e.Project || old.Pipeline != e.Pipeline || old.Trigger != e.Trigger ||
		(old.Branch != "" && old.Branch != e.Branch) || (old.Commit != "" && old.Commit != e.Commit) {
		return 0, fmt.Errorf("store: execution %s runs pipeline %s of %s (%s) on %s@%s; project, pipeline, trigger, "+
			"branch and commit cannot change (given %s of %s (%s) on %s@%s)", e.ID, old.Pipeline, old.Project, old.Trigger,
			old.Branch, old.Commit, e.Pipeline, e.Project, e.Trigger, e.Branch, e.Commit)
	}
	if expectGeneration != AnyGeneration && expectGeneration != old.Generation {
		return 0, fmt.Errorf("store: execution %s is at generation %d, not %d: another process changed it; "+
			"read it again and retry: %w", e.ID, old.Generation, expectGeneration, ErrConflict)
	}
	now := time.Now().UTC()
	var oldStarted sql.NullString
	if !old.StartedAt.IsZero() {
		oldStarted = sql.NullString{String: formatTime(old.StartedAt), Valid: true}
	}
	started, finished := executionTimes(e.Status, oldStarted, old.FinishedAt, now)
	gen := old.Generation + 1
	_, err = tx.q.ExecContext(ctx, `UPDATE executions SET branch = ?, commit_sha = ?, status = ?, variables = ?,
		stages = ?, error = ?, started_at = ?, updated_at = ?, finished_at = ?, generation = ?, owner_pid = ?, owner_host = ?
		WHERE id = ?`,
		e.Branch, e.Commit, e.Status, variables, stages, e.Error, started, formatTime(now), finished, gen, e.OwnerPID, e.OwnerHost, e.ID)
	if err != nil {
		return 0, fmt.Errorf("store: update execution %s: %w", e.ID, err)
	}
	return gen, nil
}

func executionJSON(e Execution) (variables, stages sql.NullString, err error) {
	if variables, err = nullJSON("variables of execution "+e.ID, e.Variables); err != nil {
		return
	}
	stages, err = nullJSON("stages of execution "+e.ID, e.Stages)
	return
}

// GetExecution is Store.GetExecution inside the transaction.
func (tx *Tx) GetExecution(ctx context.Context, id string) (Execution, error) {
	es, err := tx.queryExecutions(ctx, executionColumns+` WHERE id = ?`, id)
	if err != nil {
		return Execution{}, err
	}
	if len(es) == 0 {
		return Execution{}, NoExecution(id)
	}
	return es[0], nil
}

// FindExecutions is Store.FindExecutions inside the transaction.
func (tx *Tx) FindExecutions(ctx context.Context, f ExecutionFilter) ([]Execution, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	return tx.queryExecutions(ctx, executionColumns+`
		WHERE (?1 = '' OR project = ?1) AND (?2 = '' OR pipeline = ?2) AND (?3 = '' OR branch = ?3)
		AND (?4 = '' OR status = ?4)
		ORDER BY created_at DESC, rowid DESC LIMIT ?5`, f.Project, f.Pipeline, f.Branch, f.Status, limit)
}

// ActiveExecutions is Store.ActiveExecutions inside the transaction.
func (tx *Tx) ActiveExecutions(ctx context.Context, project string) ([]Execution, error) {
	return tx.queryExecutions(ctx, executionColumns+`
		WHERE status IN ('queued', 'running', 'waiting') AND (?1 = '' OR project = ?1)
		ORDER BY created_at, rowid`, project)
}

const executionColumns = `SELECT id, project, pipeline, trigger_type, branch, commit_sha, status, variables, stages,
	error, created_at, started_at, updated_at, finished_at, generation, owner_pid, owner_host FROM executions`

func (tx *Tx) queryExecutions(ctx context.Context, query string, args ...any) ([]Execution, error) {
	rows, err := tx.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read executions: %w", err)
	}
	defer rows.Close()
	var es []Execution
	for rows.Next() {
		var e Execution
		var variables, stages, started, finished sql.NullString
		var created, updated string
		if err := rows.Scan(&e.ID, &e.Project, &e.Pipeline, &e.Trigger, &e.Branch, &e.Commit, &e.Status,
			&variables, &stages, &e.Error, &created, &started, &updated, &finished, &e.Generation, &e.OwnerPID, &e.OwnerHost); err != nil {
			return nil, fmt.Errorf("store: read executions: %w", err)
		}
		if variables.Valid {
			e.Variables = json.RawMessage(variables.String)
		}
		if stages.Valid {
			e.Stages = json.RawMessage(stages.String)
		}
		if e.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		if e.UpdatedAt, err = parseTime(updated); err != nil {
			return nil, err
		}
		if started.Valid {
			if e.StartedAt, err = parseTime(started.String); err != nil {
				return nil, err
			}
		}
		if e.FinishedAt, err = parseOptionalTime(finished); err != nil {
			return nil, err
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read executions: %w", err)
	}
	return es, nil
}

// parseOptionalTime reads a nullable timestamp column.
func parseOptionalTime(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

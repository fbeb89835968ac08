package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// EnvState is what an environment runs now. The store keeps it but does not
// interpret Status or Details; the platform that writes them does.
type EnvState struct {
	Project     string `json:"project"`
	Environment string `json:"environment"`
	// Revision is the current revision's ID; empty when none runs. When set,
	// the revision must be recorded (CreateRevision) first.
	Revision string `json:"revision,omitempty"`
	// Status is free-form: "up", "down", "deploying"...
	Status string `json:"status"`
	// Details is opaque to the store: task IDs, ports, colours.
	Details   json.RawMessage `json:"details,omitempty"`
	UpdatedAt time.Time       `json:"updated_at"`
	// Generation counts the writes of this state, starting at 1; PutEnvState
	// can require it unchanged since the caller read it.
	Generation int64 `json:"generation"`
}

// AnyGeneration tells PutEnvState to write whatever generation is stored.
const AnyGeneration int64 = -1

// GetEnvState returns the state of an environment, or an error wrapping ErrNotFound.
func (s *Store) GetEnvState(ctx context.Context, project, env string) (EnvState, error) {
	return s.auto.GetEnvState(ctx, project, env)
}

// PutEnvState writes st (its UpdatedAt and Generation are ignored and set by
// the store) and returns the new generation. Unless expectGeneration is
// AnyGeneration, the stored generation must equal it (0: no state stored yet),
// or PutEnvState changes nothing and returns an error wrapping ErrConflict.
func (s *Store) PutEnvState(ctx context.Context, st EnvState, expectGeneration int64) (int64, error) {
	var gen int64
	err := s.Tx(ctx, func(tx *Tx) error {
		var err error
		gen, err = tx.PutEnvState(ctx, st, expectGeneration)
		return err
	})
	return gen, err
}

// ListEnvStates returns the states of a project's environments (of all
// projects when project is empty), ordered by project and environment.
func (s *Store) ListEnvStates(ctx context.Context, project string) ([]EnvState, error) {
	return s.auto.ListEnvStates(ctx, project)
}

// DeleteEnvState forgets an environment's state. Deleting a state that does
// not exist is not an error, so `down` can be repeated.
func (s *Store) DeleteEnvState(ctx context.Context, project, env string) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.DeleteEnvState(ctx, project, env) })
}

const envStateColumns = `SELECT project, environment, revision, status, details, updated_at, generation FROM env_states`

// GetEnvState is Store.GetEnvState inside the transaction.
func (tx *Tx) GetEnvState(ctx context.Context, project, env string) (EnvState, error) {
	states, err := tx.queryEnvStates(ctx, envStateColumns+` WHERE project = ? AND environment = ?`, project, env)
	if err != nil {
		return EnvState{}, err
	}
	if len(states) == 0 {
		return EnvState{}, fmt.Errorf("store: no state for environment %s of project %s: %w", env, project, ErrNotFound)
	}
	return states[0], nil
}

// PutEnvState is Store.PutEnvState inside the transaction.
func (tx *Tx) PutEnvState(ctx context.Context, st EnvState, expectGeneration int64) (int64, error) {
	if st.Project == "" || st.Environment == "" {
		return 0, errors.New("store: environment state needs a project and an environment")
	}
	details, err := nullJSON(fmt.Sprintf("details of environment %s/%s", st.Project, st.Environment), st.Details)
	if err != nil {
		return 0, err
	}
	var current int64
	err = tx.q.QueryRowContext(ctx, `SELECT generation FROM env_states WHERE project = ? AND environment = ?`,
		st.Project, st.Environment).Scan(&current)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: read state of %s/%s: %w", st.Project, st.Environment, err)
	}
	if expectGeneration != AnyGeneration && expectGeneration != current {
		return 0, fmt.Errorf("store: state of %s/%s is at generation %d, not %d: another command changed it; "+
			"read it again and retry: %w", st.Project, st.Environment, current, expectGeneration, ErrConflict)
	}
	revision := sql.NullString{String: st.Revision, Valid: st.Revision != ""}
	if revision.Valid {
		// Checked here, not left to the foreign key, for an error that says what to do.
		if _, err := tx.GetRevision(ctx, st.Revision); err != nil {
			return 0, fmt.Errorf("store: state of %s/%s names revision %s, which is not recorded; create the revision first: %w",
				st.Project, st.Environment, st.Revision, err)
		}
	}
	_, err = tx.q.ExecContext(ctx, `INSERT INTO env_states
		(project, environment, revision, status, details, updated_at, generation) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (project, environment) DO UPDATE SET revision = excluded.revision, status = excluded.status,
		details = excluded.details, updated_at = excluded.updated_at, generation = excluded.generation`,
		st.Project, st.Environment, revision, st.Status, details, formatTime(time.Now()), current+1)
	if err != nil {
		return 0, fmt.Errorf("store: write state of %s/%s: %w", st.Project, st.Environment, err)
	}
	return current + 1, nil
}

// ListEnvStates is Store.ListEnvStates inside the transaction.
func (tx *Tx) ListEnvStates(ctx context.Context, project string) ([]EnvState, error) {
	return tx.queryEnvStates(ctx, envStateColumns+` WHERE ?1 = '' OR project = ?1 ORDER BY project, environment`, project)
}

// DeleteEnvState is Store.DeleteEnvState inside the transaction.
func (tx *Tx) DeleteEnvState(ctx context.Context, project, env string) error {
	if _, err := tx.q.ExecContext(ctx, `DELETE FROM env_states WHERE project = ? AND environment = ?`, project, env); err != nil {
		return fmt.Errorf("store: delete state of %s/%s: %w", project, env, err)
	}
	return nil
}

func (tx *Tx) queryEnvStates(ctx context.Context, query string, args ...any) ([]EnvState, error) {
	rows, err := tx.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read environment states: %w", err)
	}
	defer rows.Close()
	var states []EnvState
	for rows.Next() {
		var st EnvState
		var revision, details sql.NullString
		var updated string
		if err := rows.Scan(&st.Project, &st.Environment, &revision, &st.Status, &details, &updated, &st.Generation); err != nil {
			return nil, fmt.Errorf("store: read environment states: %w", err)
		}
		st.Revision = revision.String
		if details.Valid {
			st.Details = json.RawMessage(details.String)
		}
		if st.UpdatedAt, err = parseTime(updated); err != nil {
			return nil, err
		}
		states = append(states, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read environment states: %w", err)
	}
	return states, nil
}

package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Deployment statuses. The store interprets only DeploymentInProgress: at
// most one deployment per environment has it, and leaving it sets FinishedAt.
const (
	DeploymentInProgress = "in_progress"
	DeploymentSucceeded  = "succeeded"
	DeploymentFailed     = "failed"
	DeploymentRolledBack = "rolled_back"
	DeploymentStopped    = "stopped"
)

// Deployment is one attempt to move an environment to a revision. The
// controller persists it before every step it acts on, so that another
// process can resume or roll back after a crash.
type Deployment struct {
	// ID is chosen by the caller, e.g. "d-20261124-150405-ab12".
	ID          string `json:"id"`
	Project     string `json:"project"`
	Environment string `json:"environment"`
	// Revision is the target; it must be recorded (CreateRevision) first.
	Revision         string `json:"revision"`
	PreviousRevision string `json:"previous_revision,omitempty"`
	// Strategy is "blue_green" or "rolling"; opaque to the store.
	Strategy string `json:"strategy"`
	// Phase is the controller's phase name; opaque to the store.
	Phase string `json:"phase"`
	// Status is one of the Deployment* constants; empty means in_progress on create.
	Status string `json:"status"`
	// TrafficPercent is the share of production traffic on the new set, 0-100.
	TrafficPercent int `json:"traffic_percent"`
	// Reason says in plain words why the deployment ended as it did.
	Reason   string          `json:"reason,omitempty"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
	// Data is private to the controller: colours, step index, deadlines.
	Data json.RawMessage `json:"data,omitempty"`
	// Owner is the ID of the lease holder driving the deployment.
	Owner     string    `json:"owner,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// FinishedAt is set by the store when Status leaves in_progress.
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Generation counts the writes of this deployment, starting at 1.
	Generation int64 `json:"generation"`
}

func (d Deployment) validate() error {
	switch {
	case d.ID == "":
		return errors.New("store: deployment has no ID")
	case d.Project == "" || d.Environment == "":
		return fmt.Errorf("store: deployment %s: project and environment must be set", d.ID)
	case d.Revision == "":
		return fmt.Errorf("store: deployment %s has no target revision", d.ID)
	case d.Strategy == "":
		return fmt.Errorf("store: deployment %s has no strategy", d.ID)
	case d.TrafficPercent < 0 || d.TrafficPercent > 100:
		return fmt.Errorf("store: deployment %s: traffic percent %d is outside 0-100", d.ID, d.TrafficPercent)
	}
	switch d.Status {
	case DeploymentInProgress, DeploymentSucceeded, DeploymentFailed, DeploymentRolledBack, DeploymentStopped:
		return nil
	}
	return fmt.Errorf("store: deployment %s: unknown status %q; use in_progress, succeeded, failed, rolled_back or stopped",
		d.ID, d.Status)
}

// CreateDeployment records d with generation 1. CreatedAt defaults to now and
// an empty Status to in_progress. It fails with ErrConflict when the ID is
// taken or another deployment of the environment is in progress, and with
// ErrNotFound when the revision is not recorded.
func (s *Store) CreateDeployment(ctx context.Context, d Deployment) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.CreateDeployment(ctx, d) })
}

// GetDeployment returns the deployment with the given ID, or an error wrapping ErrNotFound.
func (s *Store) GetDeployment(ctx context.Context, id string) (Deployment, error) {
	return s.auto.GetDeployment(ctx, id)
}

// UpdateDeployment writes the mutable fields of d (all but Project,
// Environment, Revision and CreatedAt, which must match what is stored) and
// returns the new generation. Unless expectGeneration is AnyGeneration, the
// stored generation must equal it, or nothing changes and the error wraps
// ErrConflict. The store sets UpdatedAt, and FinishedAt when Status leaves
// in_progress (the first time only).
func (s *Store) UpdateDeployment(ctx context.Context, d Deployment, expectGeneration int64) (int64, error) {
	var gen int64
	err := s.Tx(ctx, func(tx *Tx) error {
		var err error
		gen, err = tx.UpdateDeployment(ctx, d, expectGeneration)
		return err
	})
	return gen, err
}

// ListDeployments returns an environment's deployments, newest first, at most
// limit of them (all when limit <= 0). An empty project or environment matches any.
func (s *Store) ListDeployments(ctx context.Context, project, env string, limit int) ([]Deployment, error) {
	return s.auto.ListDeployments(ctx, project, env, limit)
}

// ActiveDeployment returns the environment's deployment in progress, or an
// error wrapping ErrNotFound.
func (s *Store) ActiveDeployment(ctx context.Context, project, env string) (Deployment, error) {
	return s.auto.ActiveDeployment(ctx, project, env)
}

// LastSucceededDeployment returns the environment's deployment that succeeded
// last, the one to roll back to, or an error wrapping ErrNotFound.
func (s *Store) LastSucceededDeployment(ctx context.Context, project, env string) (Deployment, error) {
	return s.auto.LastSucceededDeployment(ctx, project, env)
}

// CreateDeployment is Store.CreateDeployment inside the transaction.
func (tx *Tx) CreateDeployment(ctx context.Context, d Deployment) error {
	if d.Status == "" {
		d.Status = DeploymentInProgress
	}
	if err := d.validate(); err != nil {
		return err
	}
	evidence, data, err := deploymentJSON(d)
	if err != nil {
		return err
	}
	if old, err := tx.GetDeployment(ctx, d.ID); err == nil {
		return fmt.Errorf("store: deployment %s already exists (for %s/%s, created %s); choose a new ID: %w",
			d.ID, old.Project, old.Environment, old.CreatedAt.Format(time.RFC3339), ErrConflict)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := tx.checkTarget(ctx, d); err != nil {
		return err
	}
	now := time.Now().UTC()
	var finished sql.NullString
	if d.Status != DeploymentInProgress {
		finished = sql.NullString{String: formatTime(now), Valid: true}
	}
	_, err = tx.q.ExecContext(ctx, `INSERT INTO deployments (id, project, environment, revision, previous_revision,
		strategy, phase, status, traffic_percent, reason, evidence, data, owner, created_at, updated_at, finished_at, generation)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
		d.ID, d.Project, d.Environment, d.Revision, d.PreviousRevision, d.Strategy, d.Phase, d.Status,
		d.TrafficPercent, d.Reason, evidence, data, d.Owner, formatTime(nowIfZero(d.CreatedAt)), formatTime(now), finished)
	if err != nil {
		return fmt.Errorf("store: record deployment %s: %w", d.ID, err)
	}
	return nil
}

// checkTarget gives clear errors for what the schema would refuse anyway: an
// unknown revision, a second deployment in progress.
func (tx *Tx) checkTarget(ctx context.Context, d Deployment) error {
	if _, err := tx.GetRevision(ctx, d.Revision); err != nil {
		return fmt.Errorf("store: deployment %s targets revision %s, which is not recorded; create the revision first: %w",
			d.ID, d.Revision, err)
	}
	if d.Status != DeploymentInProgress {
		return nil
	}
	active, err := tx.ActiveDeployment(ctx, d.Project, d.Environment)
	switch {
	case err == nil && active.ID != d.ID:
		return fmt.Errorf("store: deployment %s of %s/%s is still in progress (phase %s); finish or stop it before starting %s: %w",
			active.ID, d.Project, d.Environment, active.Phase, d.ID, ErrConflict)
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	return nil
}

// UpdateDeployment is Store.UpdateDeployment inside the transaction.
func (tx *Tx) UpdateDeployment(ctx context.Context, d Deployment, expectGeneration int64) (int64, error) {
	if err := d.validate(); err != nil {
		return 0, err
	}
	evidence, data, err := deploymentJSON(d)
	if err != nil {
		return 0, err
	}
	old, err := tx.GetDeployment(ctx, d.ID)
	if err != nil {
		return 0, err
	}
	if old.Project != d.Project || old.Environment != d.Environment || old.Revision != d.Revision {
		return 0, fmt.Errorf("store: deployment %s moves %s/%s to revision %s; project, environment and revision cannot change "+
			"(given %s/%s, revision %s)", d.ID, old.Project, old.Environment, old.Revision, d.Project, d.Environment, d.Revision)
	}
	if expectGeneration != AnyGeneration && expectGeneration != old.Generation {
		return 0, fmt.Errorf("store: deployment %s is at generation %d, not %d: another process changed it; "+
			"read it again and retry: %w", d.ID, old.Generation, expectGeneration, ErrConflict)
	}
	if d.Status == DeploymentInProgress && old.Status != DeploymentInProgress {
		if err := tx.checkTarget(ctx, d); err != nil {
			return 0, err
		}
	}
	now := time.Now().UTC()
	var finished sql.NullString
	switch {
	case d.Status == DeploymentInProgress:
		// Resumed: it is not finished any more.
	case old.FinishedAt != nil:
		finished = sql.NullString{String: formatTime(*old.FinishedAt), Valid: true}
	default:
		finished = sql.NullString{String: formatTime(now), Valid: true}
	}
	gen := old.Generation + 1
	_, err = tx.q.ExecContext(ctx, `UPDATE deployments SET previous_revision = ?, strategy = ?, phase = ?, status = ?,
		traffic_percent = ?, reason = ?, evidence = ?, data = ?, owner = ?, updated_at = ?, finished_at = ?, generation = ?
		WHERE id = ?`,
		d.PreviousRevision, d.Strategy, d.Phase, d.Status, d.TrafficPercent, d.Reason, evidence, data, d.Owner,
		formatTime(now), finished, gen, d.ID)
	if err != nil {
		return 0, fmt.Errorf("store: update deployment %s: %w", d.ID, err)
	}
	return gen, nil
}

func deploymentJSON(d Deployment) (evidence, data sql.NullString, err error) {
	if evidence, err = nullJSON("evidence of deployment "+d.ID, d.Evidence); err != nil {
		return
	}
	data, err = nullJSON("data of deployment "+d.ID, d.Data)
	return
}

// GetDeployment is Store.GetDeployment inside the transaction.
func (tx *Tx) GetDeployment(ctx context.Context, id string) (Deployment, error) {
	ds, err := tx.queryDeployments(ctx, deploymentColumns+` WHERE id = ?`, id)
	if err != nil {
		return Deployment{}, err
	}
	if len(ds) == 0 {
		return Deployment{}, fmt.Errorf("store: deployment %s: %w", id, ErrNotFound)
	}
	return ds[0], nil
}

// ListDeployments is Store.ListDeployments inside the transaction.
func (tx *Tx) ListDeployments(ctx context.Context, project, env string, limit int) ([]Deployment, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	return tx.queryDeployments(ctx, deploymentColumns+`
		WHERE (?1 = '' OR project = ?1) AND (?2 = '' OR environment = ?2)
		ORDER BY created_at DESC, rowid DESC LIMIT ?3`, project, env, limit)
}

// ActiveDeployment is Store.ActiveDeployment inside the transaction.
func (tx *Tx) ActiveDeployment(ctx context.Context, project, env string) (Deployment, error) {
	ds, err := tx.queryDeployments(ctx, deploymentColumns+`
		WHERE project = ? AND environment = ? AND status = 'in_progress'`, project, env)
	if err != nil {
		return Deployment{}, err
	}
	if len(ds) == 0 {
		return Deployment{}, fmt.Errorf("store: no deployment of %s/%s is in progress: %w", project, env, ErrNotFound)
	}
	return ds[0], nil
}

// LastSucceededDeployment is Store.LastSucceededDeployment inside the transaction.
func (tx *Tx) LastSucceededDeployment(ctx context.Context, project, env string) (Deployment, error) {
	ds, err := tx.queryDeployments(ctx, deploymentColumns+`
		WHERE project = ? AND environment = ? AND status = 'succeeded'
		ORDER BY finished_at DESC, created_at DESC, rowid DESC LIMIT 1`, project, env)
	if err != nil {
		return Deployment{}, err
	}
	if len(ds) == 0 {
		return Deployment{}, fmt.Errorf("store: no deployment of %s/%s has succeeded: %w", project, env, ErrNotFound)
	}
	return ds[0], nil
}

const deploymentColumns = `SELECT id, project, environment, revision, previous_revision, strategy, phase, status,
	traffic_percent, reason, evidence, data, owner, created_at, updated_at, finished_at, generation FROM deployments`

func (tx *Tx) queryDeployments(ctx context.Context, query string, args ...any) ([]Deployment, error) {
	rows, err := tx.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read deployments: %w", err)
	}
	defer rows.Close()
	var ds []Deployment
	for rows.Next() {
		var d Deployment
		var evidence, data, finished sql.NullString
		var created, updated string
		if err := rows.Scan(&d.ID, &d.Project, &d.Environment, &d.Revision, &d.PreviousRevision, &d.Strategy,
			&d.Phase, &d.Status, &d.TrafficPercent, &d.Reason, &evidence, &data, &d.Owner,
			&created, &updated, &finished, &d.Generation); err != nil {
			return nil, fmt.Errorf("store: read deployments: %w", err)
		}
		if evidence.Valid {
			d.Evidence = json.RawMessage(evidence.String)
		}
		if data.Valid {
			d.Data = json.RawMessage(data.String)
		}
		if d.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		if d.UpdatedAt, err = parseTime(updated); err != nil {
			return nil, err
		}
		if finished.Valid {
			t, err := parseTime(finished.String)
			if err != nil {
				return nil, err
			}
			d.FinishedAt = &t
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read deployments: %w", err)
	}
	return ds, nil
}

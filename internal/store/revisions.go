package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Revision is an immutable record of what an environment runs: one image and
// configuration per service. Its ID is chosen by the caller, normally derived
// from a hash of the content ("r-" + 12 hex digits), so recording the same
// content twice is harmless.
type Revision struct {
	ID          string                     `json:"id"`
	Project     string                     `json:"project"`
	Environment string                     `json:"environment"`
	Services    map[string]ServiceRevision `json:"services"`
	// Source says where the content came from: a git commit, "working tree".
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"created_at"`
}

// ServiceRevision is one service of a revision.
type ServiceRevision struct {
	// Image is pinned by digest: repo@sha256:... or an image ID sha256:...
	Image      string `json:"image"`
	ConfigHash string `json:"config_hash"`
}

func (r Revision) validate() error {
	switch {
	case r.ID == "":
		return errors.New("store: revision has no ID")
	case r.Project == "" || r.Environment == "":
		return fmt.Errorf("store: revision %s: project and environment must be set", r.ID)
	case len(r.Services) == 0:
		return fmt.Errorf("store: revision %s has no services", r.ID)
	}
	for name, svc := range r.Services {
		if name == "" || svc.Image == "" {
			return fmt.Errorf("store: revision %s: service %q needs a name and an image", r.ID, name)
		}
	}
	return nil
}

// sameContent compares what the ID stands for. Source and CreatedAt are
// provenance: rebuilding identical images from another commit yields the same
// revision, and the first record of it stays.
func (r Revision) sameContent(o Revision) bool {
	return r.Project == o.Project && r.Environment == o.Environment && maps.Equal(r.Services, o.Services)
}

// CreateRevision records r (CreatedAt defaults to now). Recording an ID again
// with the same content does nothing; with other content it fails with
// ErrConflict, because revisions never change.
func (s *Store) CreateRevision(ctx context.Context, r Revision) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.CreateRevision(ctx, r) })
}

// GetRevision returns the revision with the given ID, or an error wrapping ErrNotFound.
func (s *Store) GetRevision(ctx context.Context, id string) (Revision, error) {
	return s.auto.GetRevision(ctx, id)
}

// ListRevisions returns the revisions of an environment, newest first, at most
// limit of them (all when limit <= 0). An empty project or environment matches any.
func (s *Store) ListRevisions(ctx context.Context, project, env string, limit int) ([]Revision, error) {
	return s.auto.ListRevisions(ctx, project, env, limit)
}

// CreateRevision is Store.CreateRevision inside the transaction.
func (tx *Tx) CreateRevision(ctx context.Context, r Revision) error {
	if err := r.validate(); err != nil {
		return err
	}
	old, err := tx.GetRevision(ctx, r.ID)
	switch {
	case err == nil:
		if !old.sameContent(r) {
			return fmt.Errorf("store: revision %s already exists with other content (%s); revisions are immutable, "+
				"so derive a new ID from the new content: %w", r.ID, describeDiff(old, r), ErrConflict)
		}
		return nil
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if _, err := tx.q.ExecContext(ctx,
		`INSERT INTO revisions (id, project, environment, source, created_at) VALUES (?, ?, ?, ?, ?)`,
		r.ID, r.Project, r.Environment, r.Source, formatTime(nowIfZero(r.CreatedAt))); err != nil {
		return fmt.Errorf("store: record revision %s: %w", r.ID, err)
	}
	for _, name := range slices.Sorted(maps.Keys(r.Services)) {
		svc := r.Services[name]
		if _, err := tx.q.ExecContext(ctx,
			`INSERT INTO revision_services (revision_id, service, image, config_hash) VALUES (?, ?, ?, ?)`,
			r.ID, name, svc.Image, svc.ConfigHash); err != nil {
			return fmt.Errorf("store: record revision %s service %s: %w", r.ID, name, err)
		}
	}
	return nil
}

func describeDiff(old, r Revision) string {
	if old.Project != r.Project || old.Environment != r.Environment {
		return fmt.Sprintf("stored for %s/%s, not %s/%s", old.Project, old.Environment, r.Project, r.Environment)
	}
	for _, name := range slices.Sorted(maps.Keys(r.Services)) {
		o, ok := old.Services[name]
		switch {
		case !ok:
			return fmt.Sprintf("service %s is not in the stored revision", name)
		case o != r.Services[name]:
			return fmt.Sprintf("service %s: stored image %s config %s, given image %s config %s",
				name, o.Image, o.ConfigHash, r.Services[name].Image, r.Services[name].ConfigHash)
		}
	}
	return "the stored revision has more services"
}

// GetRevision is Store.GetRevision inside the transaction.
func (tx *Tx) GetRevision(ctx context.Context, id string) (Revision, error) {
	revs, err := tx.queryRevisions(ctx, revisionColumns+` WHERE id = ?`, id)
	if err != nil {
		return Revision{}, err
	}
	if len(revs) == 0 {
		return Revision{}, fmt.Errorf("store: revision %s: %w", id, ErrNotFound)
	}
	return revs[0], nil
}

// ListRevisions is Store.ListRevisions inside the transaction.
func (tx *Tx) ListRevisions(ctx context.Context, project, env string, limit int) ([]Revision, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	return tx.queryRevisions(ctx, revisionColumns+`
		WHERE (?1 = '' OR project = ?1) AND (?2 = '' OR environment = ?2)
		ORDER BY created_at DESC, rowid DESC LIMIT ?3`, project, env, limit)
}

// revisionColumns starts the selections given to queryRevisions. rowid breaks
// ties between equal created_at in insertion order.
const revisionColumns = `SELECT rowid AS n, id, project, environment, source, created_at FROM revisions`

// queryRevisions joins the revisions selected by sel with their services in
// one statement, so a revision is never seen without its services.
func (tx *Tx) queryRevisions(ctx context.Context, sel string, args ...any) ([]Revision, error) {
	rows, err := tx.q.QueryContext(ctx, `SELECT r.id, r.project, r.environment, r.source, r.created_at,
		s.service, s.image, s.config_hash
		FROM (`+sel+`) AS r JOIN revision_services AS s ON s.revision_id = r.id
		ORDER BY r.created_at DESC, r.n DESC, s.service`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read revisions: %w", err)
	}
	defer rows.Close()
	var revs []Revision
	for rows.Next() {
		var r Revision
		var created, service string
		var svc ServiceRevision
		if err := rows.Scan(&r.ID, &r.Project, &r.Environment, &r.Source, &created,
			&service, &svc.Image, &svc.ConfigHash); err != nil {
			return nil, fmt.Errorf("store: read revisions: %w", err)
		}
		if n := len(revs); n > 0 && revs[n-1].ID == r.ID {
			revs[n-1].Services[service] = svc
			continue
		}
		if r.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		r.Services = map[string]ServiceRevision{service: svc}
		revs = append(revs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read revisions: %w", err)
	}
	return revs, nil
}

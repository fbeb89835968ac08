package store

import (
	"context"
	"fmt"
)

// ID returns the store's identity: 32 hex digits chosen at random when the
// database was created (or first opened by a cutover that knows it) and
// never changed. Two stores on one machine, for instance two CUTOVER_HOMEs,
// have different IDs even for the same project; it names no path or user.
func (s *Store) ID(ctx context.Context) (string, error) {
	var id string
	if err := s.auto.q.QueryRowContext(ctx, `SELECT id FROM store_identity`).Scan(&id); err != nil {
		return "", fmt.Errorf("store: reading the identity of %s: %w", s.path, err)
	}
	return id, nil
}

package store

import (
	"context"
	"fmt"
	"strings"
)

// Check runs SQLite's integrity check over the whole database file and
// returns nil when it reports ok, else an error listing what it found.
func (s *Store) Check(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("integrity check of %s: %w", s.path, err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("integrity check of %s: %w", s.path, err)
		}
		if line != "ok" {
			found = append(found, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check of %s: %w", s.path, err)
	}
	if len(found) > 0 {
		return fmt.Errorf("integrity check of %s: %s", s.path, strings.Join(found, "; "))
	}
	return nil
}

package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestMigrateFromEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "home")
	path := filepath.Join(dir, "cutover.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory %s: %v, %v; want mode 0700", dir, fi.Mode(), err)
	}
	if v := versions(t, s); len(v) != SchemaVersion() || v[len(v)-1] != SchemaVersion() {
		t.Fatalf("schema_migrations = %v, want 1..%d", v, SchemaVersion())
	}
	var mode string
	var fk, sync int
	conn := s.db
	if err := conn.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	if err := conn.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v; want 1", fk, err)
	}
	if err := conn.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("synchronous = %d, %v; want 2 (FULL)", sync, err)
	}
}

func TestReopenIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cutover.db")
	for i := range 3 {
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("open #%d: %v", i, err)
		}
		if i == 0 {
			if err := s.CreateRevision(t.Context(), testRevision("r-1", testTime)); err != nil {
				t.Fatal(err)
			}
		}
		if v := versions(t, s); len(v) != SchemaVersion() {
			t.Fatalf("open #%d: schema_migrations = %v", i, v)
		}
		if _, err := s.GetRevision(t.Context(), "r-1"); err != nil {
			t.Fatalf("open #%d: %v", i, err)
		}
		s.Close()
	}
}

// Processes that start together (the CLI and the daemon) may both find an
// empty file; each migration must still run exactly once.
func TestConcurrentFirstOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cutover.db")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			s, err := Open(t.Context(), path)
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := versions(t, s); len(v) != SchemaVersion() {
		t.Fatalf("schema_migrations = %v", v)
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cutover.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		SchemaVersion()+5, formatTime(testTime)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err = Open(t.Context(), path)
	if err == nil {
		t.Fatal("opened a database from a newer cutover")
	}
	for _, want := range []string{path, fmt.Sprintf("schema version %d", SchemaVersion()+5), "upgrade cutover"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.Context(), ""); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := Open(t.Context(), filepath.Join(t.TempDir(), "a?b.db")); err == nil {
		t.Error("path with '?' accepted")
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), filepath.Join(notDir, "cutover.db")); err == nil || !strings.Contains(err.Error(), notDir) {
		t.Errorf("parent is a file: error = %v, want one naming %s", err, notDir)
	}
}

func versions(t *testing.T, s *Store) []int {
	t.Helper()
	rows, err := s.db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOpenNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cutover.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not sqlite\n", 200)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "CUTOVER_HOME") {
		t.Fatalf("Open(garbage) error = %v, want one naming %s", err, path)
	}
	t.Log(err)
}

// A store file cut short (a full disk, a partial copy) is refused with its
// path and what to do, not only SQLite's "database disk image is malformed".
func TestOpenDamagedDatabaseSaysWhatToDo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cutover.db")
	ctx := t.Context()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "is damaged") || !strings.Contains(err.Error(), "mv "+path) {
		t.Fatalf("Open(cut short) error = %v, want one naming %s, saying it is damaged and what to do", err, path)
	}
	t.Log(err)
}

// A database written by a cutover with schema version 1 gains deployments,
// leases and executions on open and keeps its data.
func TestUpgradeFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cutover.db")
	ctx := t.Context()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRevision(ctx, testRevision("r-1", testTime)); err != nil {
		t.Fatal(err)
	}
	// Back to what schema version 1 created: every later table dropped,
	// newest first (children before the tables they reference).
	v1 := map[string]bool{"revisions": true, "revision_services": true, "env_states": true, "events": true, "schema_migrations": true}
	rows, err := s.db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid DESC`)
	if err != nil {
		t.Fatal(err)
	}
	var later []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !v1[name] && !strings.HasPrefix(name, "sqlite_") {
			later = append(later, name)
		}
	}
	rows.Close()
	for _, name := range later {
		if _, err := s.db.Exec(`DROP TABLE ` + name); err != nil {
			t.Fatalf("drop %s: %v", name, err)
		}
	}
	if _, err := s.db.Exec(`DELETE FROM schema_migrations WHERE version > 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := versions(t, s); len(v) != SchemaVersion() {
		t.Fatalf("schema_migrations after upgrade = %v", v)
	}
	if _, err := s.GetRevision(ctx, "r-1"); err != nil {
		t.Fatalf("revision lost in the upgrade: %v", err)
	}
	if err := s.CreateDeployment(ctx, Deployment{ID: "d-1", Project: "bluemed", Environment: "production",
		Revision: "r-1", Strategy: "rolling"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateExecution(ctx, testExecution("x-1")); err != nil {
		t.Fatal(err)
	}
}

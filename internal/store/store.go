// Package store is cutover's embedded state: an SQLite database (usually
// $CUTOVER_HOME/cutover.db) holding immutable revisions, the current state of
// each environment, an append-only event log, the deployments that move
// environments between revisions, the leases that let one process at a
// time deploy an environment, and the pipeline executions with their action
// logs and approvals.
//
// One file is shared by several processes (the CLI and the daemon) and by
// many goroutines in each. Every write runs in a BEGIN IMMEDIATE transaction,
// so writers queue on SQLite's lock (up to busyTimeout) instead of failing with
// SQLITE_BUSY when two of them upgrade from reading to writing at once.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

var (
	// ErrNotFound is wrapped by lookups of a revision or environment that is not recorded.
	ErrNotFound = errors.New("not found")
	// ErrConflict is wrapped when a write contradicts what is stored: a
	// generation that moved on, or a revision ID reused for different content.
	ErrConflict = errors.New("conflict")
)

// kindError is an error whose message says all there is to say (what is
// wrong, what to do) and which still matches its kind, ErrNotFound or
// ErrConflict, under errors.Is: wrapping with %w would append the kind's
// own words ("…: not found") to a message meant for a person.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// NoExecution is the error, wrapping ErrNotFound, for an execution ID that is
// not recorded; callers that hide other projects' executions answer it too.
func NoExecution(id string) error {
	return &kindError{fmt.Sprintf("there is no execution %s (`cutover executions` lists them)", id), ErrNotFound}
}

// busyTimeout bounds how long a writer waits for another process to finish
// its transaction before giving up with SQLITE_BUSY. Transactions take
// milliseconds, but SQLite's busy handler polls, so a process can lose the
// race many times in a row while another writes in a burst; failing a deploy
// command for that is worse than waiting a few seconds more.
const busyTimeout = 10 * time.Second

// Store is an open cutover database. It is safe for concurrent use.
type Store struct {
	db   *sql.DB
	path string
	// auto runs statements outside any transaction. Only single-statement
	// reads go through it: each sees one consistent snapshot on its own.
	auto *Tx
	// writing admits one write transaction of this process at a time. SQLite
	// allows one writer anyway, and its busy handler polls with sleeps, which
	// lets one connection starve while others keep winning; a channel queues
	// the waiters in order, leaving busy_timeout to arbitrate between processes.
	writing chan struct{}
}

// Open opens (creating it and its directory if needed) the database at path
// and brings its schema up to date. It refuses a database written by a newer
// cutover whose schema it does not know.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: empty database path; set CUTOVER_HOME or pass a path")
	}
	if strings.ContainsAny(path, "?#") {
		// The driver splits the DSN at '?', so such a path would silently open another file.
		return nil, fmt.Errorf("store: database path %q contains '?' or '#'; choose a CUTOVER_HOME without them", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
	}
	// The store is the audit log, the executions' logs and the approvals'
	// evidence: its owner's alone. SQLite creates the file as the umask
	// allows (0644 under systemd's 022, in a StateDirectory of 0755) and
	// gives its -wal and -shm the file's mode: made 0600 first, and a file
	// made by an older cutover narrowed.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("store: %s: %w (the store must be readable by its owner only)", p, err)
		}
	}
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db, path: path, auto: &Tx{q: db}, writing: make(chan struct{}, 1)}
	// Switching a new file to WAL (a pragma of every connection) takes an
	// exclusive lock and answers SQLITE_BUSY at once, without the busy
	// handler, when another process opens the same new file at that moment:
	// retry for as long as the busy timeout would have waited.
	deadline := time.Now().Add(busyTimeout)
	for {
		err := s.migrate(ctx)
		if err == nil {
			return s, nil
		}
		if !isBusy(err) || time.Now().After(deadline) || ctx.Err() != nil {
			db.Close()
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isBusy reports SQLite's "database is locked" (SQLITE_BUSY).
func isBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}

// dsn sets the pragmas through the DSN so that every connection the pool
// opens gets them, not just the first one.
//
// synchronous=FULL: WAL with NORMAL already survives a killed process (the
// WAL is in the OS page cache), but a power loss can then drop the last
// commits. This is a low-volume control plane whose records say which
// containers serve production, so an fsync per commit is the right price.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	return path + "?" + q.Encode()
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close closes the database. Transactions still running fail.
func (s *Store) Close() error { return s.db.Close() }

// querier is what both *sql.DB and *sql.Tx provide, so that each operation is
// written once and runs either on its own or inside a caller's transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Tx is a write transaction. Its methods are those of Store; everything done
// through one Tx is committed together or not at all. A Tx must not be used
// after the function given to Store.Tx returns.
type Tx struct{ q querier }

// Tx runs fn in one write transaction, committing when fn returns nil and
// rolling back otherwise (also when fn panics). Keep fn short and free of
// slow I/O: other writers, in this and other processes, wait for it. Inside
// fn use tx, not the Store: a Store write would wait for fn's own lock.
func (s *Store) Tx(ctx context.Context, fn func(tx *Tx) error) error {
	if err := s.waitTurn(ctx); err != nil {
		return err
	}
	defer func() { <-s.writing }()
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin transaction on %s: %w", s.path, err)
	}
	defer sqlTx.Rollback() // no-op after a successful Commit
	if err := fn(&Tx{q: sqlTx}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit to %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) waitTurn(ctx context.Context) error {
	timer := time.NewTimer(busyTimeout)
	defer timer.Stop()
	select {
	case s.writing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("store: waiting to write to %s: %w", s.path, context.Cause(ctx))
	case <-timer.C:
		return fmt.Errorf("store: another write to %s in this process has taken over %v; "+
			"inside Store.Tx, write through its tx, not the Store", s.path, busyTimeout)
	}
}

// timeLayout is RFC 3339 in UTC with a fixed nine-digit fraction, so that
// stored times stay readable and sort correctly as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// The times whose text sorts as they do: years 0000-9999.
var (
	firstTime = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	lastTime  = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// formatTime writes t as the store's text. A time outside years 0000-9999
// (in UTC) is written as the nearer end of that range: its own text would
// not sort as it does ("10000-01-01T…" before "2026-…"), and a since of
// 9999-12-31T23:59:59-00:01 answered the whole audit log where it is after
// every entry (a helper's review).
func formatTime(t time.Time) string {
	switch t = t.UTC(); {
	case t.After(lastTime):
		t = lastTime
	case t.Before(firstTime):
		t = firstTime
	}
	return t.Format(timeLayout)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: corrupt timestamp %q: %w", s, err)
	}
	return t, nil
}

// nowIfZero lets callers leave timestamps empty and get the time of the write.
func nowIfZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t.UTC()
}

// nullJSON stores empty JSON as NULL and rejects text that is not JSON, which
// would otherwise only fail later when a reader prints it with --output json.
func nullJSON(field string, raw []byte) (sql.NullString, error) {
	if len(raw) == 0 {
		return sql.NullString{}, nil
	}
	if !json.Valid(raw) {
		return sql.NullString{}, fmt.Errorf("store: %s is not valid JSON", field)
	}
	return sql.NullString{String: string(raw), Valid: true}, nil
}

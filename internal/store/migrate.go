package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// migrations are the schema, in order: migrations[i] brings the database to
// version i+1. Never edit an entry once released; append a new one instead.
var migrations = []string{
	// 1: revisions, environment state, events.
	`
CREATE TABLE revisions (
	id          TEXT PRIMARY KEY,
	project     TEXT NOT NULL,
	environment TEXT NOT NULL,
	source      TEXT NOT NULL,
	created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX revisions_by_environment ON revisions (project, environment, created_at);

CREATE TABLE revision_services (
	revision_id TEXT NOT NULL REFERENCES revisions (id),
	service     TEXT NOT NULL,
	image       TEXT NOT NULL,
	config_hash TEXT NOT NULL,
	PRIMARY KEY (revision_id, service)
) STRICT, WITHOUT ROWID;

CREATE TABLE env_states (
	project     TEXT NOT NULL,
	environment TEXT NOT NULL,
	revision    TEXT REFERENCES revisions (id),
	status      TEXT NOT NULL,
	details     TEXT,
	updated_at  TEXT NOT NULL,
	generation  INTEGER NOT NULL,
	PRIMARY KEY (project, environment)
) STRICT;

-- seq is the rowid. Writers are serialised and events are never deleted, so
-- seqs are handed out in commit order without gaps: a reader that resumes
-- after the last seq it saw misses nothing.
CREATE TABLE events (
	seq         INTEGER PRIMARY KEY,
	time        TEXT NOT NULL,
	project     TEXT NOT NULL,
	environment TEXT NOT NULL,
	kind        TEXT NOT NULL,
	message     TEXT NOT NULL,
	data        TEXT
) STRICT;
CREATE INDEX events_by_environment ON events (project, environment, seq);
`,
	// 2: deployments and leases.
	`
CREATE TABLE deployments (
	id                TEXT PRIMARY KEY,
	project           TEXT NOT NULL,
	environment       TEXT NOT NULL,
	revision          TEXT NOT NULL REFERENCES revisions (id),
	previous_revision TEXT NOT NULL,
	strategy          TEXT NOT NULL,
	phase             TEXT NOT NULL,
	status            TEXT NOT NULL,
	traffic_percent   INTEGER NOT NULL CHECK (traffic_percent BETWEEN 0 AND 100),
	reason            TEXT NOT NULL,
	evidence          TEXT,
	data              TEXT,
	owner             TEXT NOT NULL,
	created_at        TEXT NOT NULL,
	updated_at        TEXT NOT NULL,
	finished_at       TEXT,
	generation        INTEGER NOT NULL
) STRICT;
CREATE INDEX deployments_by_environment ON deployments (project, environment, created_at);
-- The code checks this first for a clear error; the index keeps it true
-- whatever writes the file.
CREATE UNIQUE INDEX deployments_one_in_progress ON deployments (project, environment)
	WHERE status = 'in_progress';

CREATE TABLE leases (
	key            TEXT PRIMARY KEY,
	holder_id      TEXT NOT NULL,
	holder_pid     INTEGER NOT NULL,
	holder_host    TEXT NOT NULL,
	holder_command TEXT NOT NULL,
	acquired_at    TEXT NOT NULL,
	expires_at     TEXT NOT NULL
) STRICT, WITHOUT ROWID;
`,
	// 3: pipeline executions, their action logs and approvals.
	`
CREATE TABLE executions (
	id          TEXT PRIMARY KEY,
	project     TEXT NOT NULL,
	pipeline    TEXT NOT NULL,
	trigger_type TEXT NOT NULL,
	branch      TEXT NOT NULL,
	commit_sha  TEXT NOT NULL,
	status      TEXT NOT NULL,
	variables   TEXT,
	stages      TEXT,
	error       TEXT NOT NULL,
	created_at  TEXT NOT NULL,
	started_at  TEXT,
	updated_at  TEXT NOT NULL,
	finished_at TEXT,
	generation  INTEGER NOT NULL
) STRICT;
CREATE INDEX executions_by_project ON executions (project, created_at);
CREATE INDEX executions_active ON executions (status) WHERE status IN ('queued', 'running', 'waiting');

-- seq counts per execution from 1, handed out under the write lock, so a
-- follower resuming after the last seq it saw misses nothing.
CREATE TABLE execution_logs (
	execution_id TEXT NOT NULL REFERENCES executions (id),
	seq          INTEGER NOT NULL,
	action       TEXT NOT NULL,
	time         TEXT NOT NULL,
	line         TEXT NOT NULL,
	PRIMARY KEY (execution_id, seq)
) STRICT;

CREATE TABLE approvals (
	execution_id TEXT NOT NULL REFERENCES executions (id),
	stage        TEXT NOT NULL,
	action       TEXT NOT NULL,
	status       TEXT NOT NULL,
	requested_at TEXT NOT NULL,
	expires_at   TEXT NOT NULL,
	decided_by   TEXT NOT NULL,
	comment      TEXT NOT NULL,
	decided_at   TEXT,
	evidence     TEXT,
	PRIMARY KEY (execution_id, action)
) STRICT;
CREATE INDEX approvals_pending ON approvals (status, requested_at) WHERE status = 'pending';
`,
	// 4: API tokens (only their SHA-256 is stored) and the append-only audit log.
	`
CREATE TABLE api_tokens (
	id          INTEGER PRIMARY KEY,
	name        TEXT NOT NULL,
	role        TEXT NOT NULL,
	hash        TEXT NOT NULL UNIQUE,
	created_by  TEXT NOT NULL,
	created_at  TEXT NOT NULL,
	revoked_at  TEXT
) STRICT;
-- A name is held by one live token at a time; a revoked token's name can be reused.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
	seq      INTEGER PRIMARY KEY,
	time     TEXT NOT NULL,
	actor    TEXT NOT NULL,
	role     TEXT NOT NULL,
	via      TEXT NOT NULL,
	remote   TEXT NOT NULL,
	action   TEXT NOT NULL,
	target   TEXT NOT NULL,
	outcome  TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_by_time ON audit_log (time);
-- Append-only whatever writes the file: no statement may change or remove a record.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
	BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
	BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
`,
	// 5: durable triggers: who owns an execution, the commands it runs, and
	// the webhook deliveries already accepted.
	`
ALTER TABLE executions ADD COLUMN owner_pid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN owner_host TEXT NOT NULL DEFAULT '';

-- A delivery (source, id) is accepted once: a replay finds its row and
-- runs nothing. The trigger itself is the queued execution it points at.
CREATE TABLE triggers (
	source       TEXT NOT NULL,
	delivery     TEXT NOT NULL,
	project      TEXT NOT NULL,
	execution_id TEXT NOT NULL REFERENCES executions (id),
	received_at  TEXT NOT NULL,
	PRIMARY KEY (source, delivery)
) STRICT, WITHOUT ROWID;

-- The process groups an execution's commands run in, while they run, so
-- that a restarted daemon can end those a killed one left behind.
CREATE TABLE execution_processes (
	execution_id TEXT NOT NULL REFERENCES executions (id),
	pgid         INTEGER NOT NULL,
	start_ticks  INTEGER NOT NULL,
	host         TEXT NOT NULL,
	started_at   TEXT NOT NULL,
	PRIMARY KEY (execution_id, pgid)
) STRICT, WITHOUT ROWID;
`,
	// the store's identity: a random ID made once, which labels the images
	// cutover builds from this store, so that pruning removes only its own.
	`
CREATE TABLE store_identity (
	id TEXT NOT NULL PRIMARY KEY
) STRICT;
INSERT INTO store_identity (id) SELECT lower(hex(randomblob(16)));
`,
	// dashboard: one-time login links and browser sessions, both stored
	// only as the SHA-256 of their secret.
	`
CREATE TABLE dashboard_links (
	hash        TEXT PRIMARY KEY,
	actor       TEXT NOT NULL,
	role        TEXT NOT NULL,
	created_at  TEXT NOT NULL,
	expires_at  TEXT NOT NULL,
	used_at     TEXT
) STRICT, WITHOUT ROWID;

CREATE TABLE dashboard_sessions (
	hash        TEXT PRIMARY KEY,
	actor       TEXT NOT NULL,
	role        TEXT NOT NULL,
	via         TEXT NOT NULL,
	token_hash  TEXT NOT NULL,
	created_at  TEXT NOT NULL,
	expires_at  TEXT NOT NULL,
	ended_at    TEXT
) STRICT, WITHOUT ROWID;
`,
	// Dashboard sessions end after an idle time: when each was last used.
	`ALTER TABLE dashboard_sessions ADD COLUMN seen_at TEXT;`,
	// A dashboard session's action key, hashed (auth.Session.CheckAction).
	`ALTER TABLE dashboard_sessions ADD COLUMN action_hash TEXT NOT NULL DEFAULT '';`,
	// An approval is its execution's stage and action, as the pipeline names
	// actions (two stages may each hold an "approve": the default pipeline's
	// for two environments of one branch). Keyed by execution and action
	// alone, the second gate found the first's decision and passed.
	`
CREATE TABLE approvals_by_stage (
	execution_id TEXT NOT NULL REFERENCES executions (id),
	stage        TEXT NOT NULL,
	action       TEXT NOT NULL,
	status       TEXT NOT NULL,
	requested_at TEXT NOT NULL,
	expires_at   TEXT NOT NULL,
	decided_by   TEXT NOT NULL,
	comment      TEXT NOT NULL,
	decided_at   TEXT,
	evidence     TEXT,
	PRIMARY KEY (execution_id, stage, action)
) STRICT;
INSERT INTO approvals_by_stage (execution_id, stage, action, status, requested_at, expires_at, decided_by, comment, decided_at, evidence)
	SELECT execution_id, stage, action, status, requested_at, expires_at, decided_by, comment, decided_at, evidence FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_by_stage RENAME TO approvals;
CREATE INDEX approvals_pending ON approvals (status, requested_at) WHERE status = 'pending';
`,
}

// openError is err from opening the store, saying what to do when SQLite
// finds the file damaged (cut short by a full disk or a copy, say): before,
// every command said only "database disk image is malformed (11)".
func (s *Store) openError(err error) error {
	var sqlErr *sqlite.Error
	if errors.As(err, &sqlErr) && sqlErr.Code()&0xff == sqlite3.SQLITE_CORRUPT {
		return fmt.Errorf("store: %s is damaged (%v): stop cutover, then restore it from a backup, or move it aside "+
			"(`mv %s %s.broken`, with its -wal and -shm files) and deploy again, losing the history, tokens and audit log in it",
			s.path, err, s.path, s.path)
	}
	return fmt.Errorf("store: open %s: %w", s.path, err)
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int { return len(migrations) }

// migrate applies the missing migrations, each in its own transaction
// together with its schema_migrations row, so a crash leaves the database at
// some complete version. Several processes may open the same file at once:
// the version is re-read inside each (immediate) transaction, so a migration
// another process applied meanwhile is skipped, not repeated.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at TEXT NOT NULL
) STRICT`); err != nil {
		var sqlErr *sqlite.Error
		if errors.As(err, &sqlErr) && sqlErr.Code() == sqlite3.SQLITE_NOTADB {
			return fmt.Errorf("store: %s is not a cutover database (not SQLite); move it away or set CUTOVER_HOME to another directory", s.path)
		}
		return s.openError(err)
	}
	current, err := schemaVersion(ctx, s.db)
	if err != nil {
		return s.openError(err)
	}
	if current > len(migrations) {
		return fmt.Errorf("store: %s has schema version %d but this cutover knows only up to %d; "+
			"upgrade cutover, or set CUTOVER_HOME to another directory", s.path, current, len(migrations))
	}
	for i, m := range migrations {
		version := i + 1
		if version <= current {
			continue
		}
		err := s.Tx(ctx, func(tx *Tx) error {
			v, err := schemaVersion(ctx, tx.q)
			if err != nil || v >= version {
				return err
			}
			if _, err := tx.q.ExecContext(ctx, m); err != nil {
				return err
			}
			_, err = tx.q.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				version, formatTime(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migrate %s to schema version %d: %w", s.path, version, err)
		}
		slog.Debug("store: schema migrated", "path", s.path, "version", version)
	}
	return nil
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, err
	}
	return int(v.Int64), nil
}

package release

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/store"
)

// Home is the use cases of the state directory alone: the API tokens and
// the audit log belong to the daemon's home, not to one cutover.yaml.
// Every change it makes is recorded in the audit log, as the local OS user.
type Home struct {
	Store *store.Store
}

// OpenHome opens the store of the state directory home.
func OpenHome(ctx context.Context, home string) (*Home, error) {
	st, err := store.Open(ctx, filepath.Join(home, "cutover.db"))
	if err != nil {
		return nil, err
	}
	return &Home{Store: st}, nil
}

// Close closes the store.
func (h *Home) Close() { h.Store.Close() }

// CreateToken creates a token with role and records it in the audit log.
func (h *Home) CreateToken(ctx context.Context, name, role string) (auth.NewToken, error) {
	if role == "" {
		return auth.NewToken{}, UsageError{"--role is required: one of viewer, deployer, approver, admin"}
	}
	t, err := auth.CreateToken(ctx, h.Store, auth.LocalUser(), name, role)
	return t, h.Record(ctx, auth.ActionTokenCreate, auth.ActionTokenCreate, name+" "+role, err)
}

// RevokeToken revokes a token for good and records it in the audit log.
func (h *Home) RevokeToken(ctx context.Context, name string) (store.Token, error) {
	t, err := auth.RevokeToken(ctx, h.Store, name)
	return t, h.Record(ctx, auth.ActionTokenRevoke, auth.ActionTokenRevoke, name, err)
}

// ListTokens lists the tokens (never nil), the revoked ones too with revoked.
func (h *Home) ListTokens(ctx context.Context, revoked bool) ([]store.Token, error) {
	list, err := h.Store.ListTokens(ctx, revoked)
	if list == nil {
		list = []store.Token{}
	}
	return list, err
}

// Audit lists the audit log (never nil) since a duration ago (24h) or a
// time (2026-12-01, RFC 3339); "" is all of it.
func (h *Home) Audit(ctx context.Context, since string) ([]store.AuditEntry, error) {
	from, err := auth.ParseSince(since, time.Now())
	if err != nil {
		return nil, UsageError{"--since: " + err.Error()}
	}
	list, err := h.Store.ListAudit(ctx, from, 0)
	if list == nil {
		list = []store.AuditEntry{}
	}
	return list, err
}

// Record writes who (the local OS user) did action on target and how it
// ended (err) into the audit log. It returns err, or, when the log cannot
// be written, an error that says so (named after command) and carries err.
func (h *Home) Record(ctx context.Context, command, action, target string, err error) error {
	if aerr := auth.Record(ctx, h.Store, auth.LocalUser(), action, target, err); aerr != nil {
		return AuditFailed(command, target, aerr, err)
	}
	return err
}

// AuditFailed is the error of a command whose audit entry could not be
// written: the log's failure first, then the command's own outcome.
func AuditFailed(command, target string, aerr, err error) error {
	own := ""
	if err != nil {
		own = "  (the command itself: " + err.Error() + ")"
	}
	return fmt.Errorf("%s %s: cannot write the audit log: %v%s", command, target, aerr, own)
}

// RecordCommand records a command of the command line in the audit log of
// the state directory home (see HomeDir), as Record does.
func RecordCommand(ctx context.Context, home, command, action, target string, err error) error {
	return withHome(ctx, home, command, target, err, func(h *Home) error {
		return h.Record(ctx, command, action, target, err)
	})
}

// RecordCommandStart records that a long command (a deployment) starts, as
// the OS user, before it acts: if the log cannot be written the command
// must not run, and one killed half way leaves its actor on record.
func RecordCommandStart(ctx context.Context, home, command, action, target string) error {
	return withHome(ctx, home, command, target, nil, func(h *Home) error {
		if aerr := auth.RecordOutcome(ctx, h.Store, auth.LocalUser(), action, target, auth.OutcomeStarted); aerr != nil {
			return AuditFailed(command, target, aerr, nil)
		}
		return nil
	})
}

// withHome runs f on the store of home; if it cannot be opened, the error
// says the audit log cannot be written (and carries err).
func withHome(ctx context.Context, home, command, target string, err error, f func(*Home) error) error {
	dir, herr := HomeDir(home)
	if herr != nil {
		return AuditFailed(command, target, herr, err)
	}
	h, herr := OpenHome(ctx, dir)
	if herr != nil {
		return AuditFailed(command, target, herr, err)
	}
	defer h.Close()
	return f(h)
}

// HomeDir is the state directory: dir (--home) if set, else $CUTOVER_HOME,
// else ~/.local/share/cutover; absolute. One that cannot be a directory (it,
// or the nearest of its parents that exists, is not a directory, or that
// parent is not writable) is refused with an error naming where it came
// from, before anything is opened or created in it.
func HomeDir(dir string) (string, error) {
	from, fix := "--home", "pass --home a directory cutover can create or write"
	if dir == "" {
		dir, from, fix = os.Getenv("CUTOVER_HOME"), "CUTOVER_HOME", "set CUTOVER_HOME to a directory cutover can create or write, or pass --home"
	}
	if dir == "" {
		u, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot find a home directory for cutover's state: %v (set CUTOVER_HOME, or pass --home)", err)
		}
		dir, from, fix = filepath.Join(u, ".local", "share", "cutover"), "the default state directory", "set CUTOVER_HOME, or pass --home"
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		err = usableDir(abs)
	}
	if err != nil {
		if from == "CUTOVER_HOME" {
			from += "="
		} else {
			from += " "
		}
		return "", fmt.Errorf("%s%s: %v (%s)", from, dir, err, fix)
	}
	return abs, nil
}

// usableDir says why dir cannot serve as a state directory, or nil: it must
// be a directory, or one its nearest existing parent lets this user create.
// It only looks; it creates nothing.
func usableDir(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR):
			if target, lerr := os.Readlink(d); lerr == nil {
				return fmt.Errorf("cannot be created: %s is a link to %s, which does not exist", d, target)
			}
			if parent := filepath.Dir(d); parent != d {
				continue
			}
			return fmt.Errorf("cannot be created: %v", err)
		case err != nil:
			return fmt.Errorf("cannot be read: %v", err)
		case !fi.IsDir() && d == dir:
			return errors.New("is not a directory")
		case !fi.IsDir():
			return fmt.Errorf("cannot be created: %s is not a directory", d)
		case d != dir && unix.Access(d, unix.W_OK|unix.X_OK) != nil:
			return fmt.Errorf("cannot be created: this user may not create directories in %s", d)
		}
		return nil
	}
}

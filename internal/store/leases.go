package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrLeaseHeld is wrapped by *LeaseHeldError when another holder has the lease.
	ErrLeaseHeld = errors.New("lease held by another process")
	// ErrLeaseLost is wrapped when a holder renews a lease that is no longer its own.
	ErrLeaseLost = errors.New("lease lost")
)

// Holder identifies who holds a lease: ID is unique per acquisition (one
// process may run several), PID, Host and Command say it to a person and let
// a process on the same host check whether the holder still runs.
type Holder struct {
	ID      string `json:"id"`
	PID     int    `json:"pid"`
	Host    string `json:"host"`
	Command string `json:"command"`
}

// Lease gives one holder a key, such as an environment to deploy, across
// processes, until ExpiresAt unless renewed.
type Lease struct {
	Key        string    `json:"key"`
	Holder     Holder    `json:"holder"`
	AcquiredAt time.Time `json:"acquired_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// LeaseHeldError is returned by AcquireLease when another holder has the lease.
type LeaseHeldError struct{ Lease Lease }

func (e *LeaseHeldError) Error() string {
	h := e.Lease.Holder
	var b strings.Builder
	fmt.Fprintf(&b, "environment %s is being deployed by ", e.Lease.Key)
	if h.PID > 0 {
		fmt.Fprintf(&b, "pid %d", h.PID)
	} else {
		fmt.Fprintf(&b, "holder %s", h.ID)
	}
	if h.Host != "" {
		fmt.Fprintf(&b, " on host %s", h.Host)
	}
	if h.Command != "" {
		fmt.Fprintf(&b, " (%s)", h.Command)
	}
	// The holder renews its lease while it runs, so the expiry says nothing
	// about when the deployment ends; how long it has been going does.
	fmt.Fprintf(&b, " since %s (%v ago)", e.Lease.AcquiredAt.Local().Format("15:04:05"),
		max(time.Since(e.Lease.AcquiredAt).Round(time.Second), 0))
	return b.String()
}

func (e *LeaseHeldError) Unwrap() error { return ErrLeaseHeld }

// AcquireLease gives key to h for ttl, in one transaction, when it is free,
// expired, already held by h.ID (which extends it), or when takeover(current
// holder) returns true; takeover may be nil. Otherwise it returns a
// *LeaseHeldError. takeover runs inside the write transaction: keep it quick,
// such as checking whether the holder's PID is alive on this host.
func (s *Store) AcquireLease(ctx context.Context, key string, h Holder, ttl time.Duration,
	takeover func(current Holder) bool) (Lease, error) {
	var l Lease
	err := s.Tx(ctx, func(tx *Tx) error {
		var err error
		l, err = tx.AcquireLease(ctx, key, h, ttl, takeover)
		return err
	})
	return l, err
}

// RenewLease extends holderID's lease on key to ttl from now. It fails with
// ErrLeaseLost when the lease is gone or another holder has it. A lease that
// expired but was not taken is still the holder's and is renewed.
func (s *Store) RenewLease(ctx context.Context, key, holderID string, ttl time.Duration) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.RenewLease(ctx, key, holderID, ttl) })
}

// ReleaseLease frees key if holderID holds it, and does nothing otherwise.
func (s *Store) ReleaseLease(ctx context.Context, key, holderID string) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.ReleaseLease(ctx, key, holderID) })
}

// GetLease returns the lease on key, expired or not, or an error wrapping ErrNotFound.
func (s *Store) GetLease(ctx context.Context, key string) (Lease, error) {
	return s.auto.GetLease(ctx, key)
}

// AcquireLease is Store.AcquireLease inside the transaction.
func (tx *Tx) AcquireLease(ctx context.Context, key string, h Holder, ttl time.Duration,
	takeover func(current Holder) bool) (Lease, error) {
	if key == "" || h.ID == "" {
		return Lease{}, errors.New("store: a lease needs a key and a holder ID")
	}
	if ttl <= 0 {
		return Lease{}, fmt.Errorf("store: lease %s: duration %v must be positive", key, ttl)
	}
	now := time.Now().UTC()
	l := Lease{Key: key, Holder: h, AcquiredAt: now, ExpiresAt: now.Add(ttl)}
	cur, err := tx.GetLease(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound): // free
	case err != nil:
		return Lease{}, err
	case cur.Holder.ID == h.ID: // ours already: extend it
		l.AcquiredAt = cur.AcquiredAt
	case !now.Before(cur.ExpiresAt): // expired
	case takeover != nil && takeover(cur.Holder): // the caller found the holder dead
	default:
		return Lease{}, &LeaseHeldError{Lease: cur}
	}
	_, err = tx.q.ExecContext(ctx, `INSERT INTO leases
		(key, holder_id, holder_pid, holder_host, holder_command, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET holder_id = excluded.holder_id, holder_pid = excluded.holder_pid,
		holder_host = excluded.holder_host, holder_command = excluded.holder_command,
		acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`,
		key, h.ID, h.PID, h.Host, h.Command, formatTime(l.AcquiredAt), formatTime(l.ExpiresAt))
	if err != nil {
		return Lease{}, fmt.Errorf("store: acquire lease %s: %w", key, err)
	}
	return l, nil
}

// RenewLease is Store.RenewLease inside the transaction. Together with
// UpdateDeployment in one Tx it writes only while the lease is still ours.
func (tx *Tx) RenewLease(ctx context.Context, key, holderID string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("store: lease %s: duration %v must be positive", key, ttl)
	}
	cur, err := tx.GetLease(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("store: lease %s was released by another process; stop acting on it: %w", key, ErrLeaseLost)
	case err != nil:
		return err
	case cur.Holder.ID != holderID:
		return fmt.Errorf("store: lease %s was taken over by pid %d on host %s (%s); stop acting on it: %w",
			key, cur.Holder.PID, cur.Holder.Host, cur.Holder.Command, ErrLeaseLost)
	}
	_, err = tx.q.ExecContext(ctx, `UPDATE leases SET expires_at = ? WHERE key = ? AND holder_id = ?`,
		formatTime(time.Now().Add(ttl)), key, holderID)
	if err != nil {
		return fmt.Errorf("store: renew lease %s: %w", key, err)
	}
	return nil
}

// ReleaseLease is Store.ReleaseLease inside the transaction.
func (tx *Tx) ReleaseLease(ctx context.Context, key, holderID string) error {
	if _, err := tx.q.ExecContext(ctx, `DELETE FROM leases WHERE key = ? AND holder_id = ?`, key, holderID); err != nil {
		return fmt.Errorf("store: release lease %s: %w", key, err)
	}
	return nil
}

// GetLease is Store.GetLease inside the transaction.
func (tx *Tx) GetLease(ctx context.Context, key string) (Lease, error) {
	var l Lease
	var acquired, expires string
	err := tx.q.QueryRowContext(ctx, `SELECT key, holder_id, holder_pid, holder_host, holder_command, acquired_at, expires_at
		FROM leases WHERE key = ?`, key).Scan(&l.Key, &l.Holder.ID, &l.Holder.PID, &l.Holder.Host, &l.Holder.Command,
		&acquired, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, fmt.Errorf("store: no lease on %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("store: read lease %s: %w", key, err)
	}
	if l.AcquiredAt, err = parseTime(acquired); err != nil {
		return Lease{}, err
	}
	if l.ExpiresAt, err = parseTime(expires); err != nil {
		return Lease{}, err
	}
	return l, nil
}

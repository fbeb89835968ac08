package store

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Attack (found by a review): under the shipped systemd units
// (StateDirectory=cutover, 0755; umask 022) the store's files were 0644:
// every local user read the audit log, the executions' logs and the
// approvals' evidence, which the API serves to tokens only. A store is its
// owner's alone, and one made 0644 before is narrowed.
func TestAttackStoreFilesAreReadableByOthers(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	home := filepath.Join(t.TempDir(), "cutover")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, "cutover.db")
	for range 2 { // made here, then one an older cutover left 0644
		st, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AppendAudit(context.Background(), AuditEntry{Time: time.Now(), Actor: "admin", Via: "cli", Action: "token create", Target: "ci", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"cutover.db", "cutover.db-wal", "cutover.db-shm"} {
			if fi, err := os.Stat(filepath.Join(home, name)); err == nil && fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s is %v: readable by every local user", name, fi.Mode().Perm())
			}
		}
		st.Close()
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

package docker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cutoverdev/cutover/internal/enginelock"
)

// plantForeignLock makes the lock file an older cutover used (a predictable
// name in the shared temporary directory tmp) as another user would: first,
// world-writable, owned by nobody when the test runs as root, and holds it
// exclusively for the rest of the test.
func plantForeignLock(t *testing.T, tmp, host string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(host))
	planted := filepath.Join(tmp, fmt.Sprintf("cutover-engine-%d-%s.lock", os.Getuid(), hex.EncodeToString(sum[:6])))
	fd, err := unix.Open(planted, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	unix.Fchmod(fd, 0o666)
	if os.Getuid() == 0 {
		if err := unix.Fchown(fd, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return planted
}

// Another local user made the image lock file first (its name was
// predictable, in the shared temporary directory) and holds its lock: every
// build and removal of images waited on it. The lock is now in a directory
// of the user's own, which the other user cannot reach.
func TestAttackImageLockOwnedByAnotherUserBlocksBuilds(t *testing.T) {
	tmp := t.TempDir()
	os.Chmod(tmp, 0o1777)
	t.Setenv("TMPDIR", tmp)
	home := t.TempDir()
	cache := enginelock.UserCacheDir
	enginelock.UserCacheDir = func() (string, error) { return filepath.Join(home, ".cache"), nil }
	t.Cleanup(func() { enginelock.UserCacheDir = cache })
	rt := &Runtime{host: "unix:///var/run/docker.sock", log: slog.New(slog.DiscardHandler)}
	planted := plantForeignLock(t, tmp, rt.host)

	path := rt.imageLockPath()
	if path == planted || strings.HasPrefix(path, tmp+string(filepath.Separator)) {
		t.Fatalf("the image lock %s is in the shared temporary directory %s", path, tmp)
	}
	if want := filepath.Join(home, ".cache", "cutover"); filepath.Dir(path) != want {
		t.Errorf("the image lock is %s, want it in %s", path, want)
	}
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 || int(fi.Sys().(*syscall.Stat_t).Uid) != os.Getuid() {
		t.Errorf("the image lock's directory is %v, uid %d; want 0700, this user's", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	unlock, err := rt.lockImages(ctx, false)
	if err != nil {
		t.Fatalf("a build waits on a lock file another user made and holds: %v", err)
	}
	// The lock still holds across this user's processes (flock(1), as a
	// second cutover with the same environment would take it).
	if out, err := exec.Command("flock", "-n", "-x", rt.imageLockPath(), "true").CombinedOutput(); err == nil {
		t.Errorf("another process took the image lock exclusively while a build held it (%s)", out)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the lock file: %v %v; want mode 0600", fi.Mode(), err)
	}
	unlock()
	unlock, err = rt.lockImages(ctx, true)
	if err != nil {
		t.Fatalf("a removal waits on a lock file another user made and holds: %v", err)
	}
	unlock()
}

// Without a cache directory of its own (no home), the lock falls back to
// the temporary directory, where a file another user made is not used: the
// build goes on unlocked, with a warning naming the file and its owner,
// instead of waiting on it for good.
func TestImageLockInTheTempDirRefusesAnotherUsersFile(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("making a file of another user takes root")
	}
	tmp := t.TempDir()
	os.Chmod(tmp, 0o1777)
	t.Setenv("TMPDIR", tmp)
	saved := enginelock.UserCacheDir
	enginelock.UserCacheDir = func() (string, error) { return "", errors.New("no home") }
	t.Cleanup(func() { enginelock.UserCacheDir = saved })
	var logged bytes.Buffer
	rt := &Runtime{host: "unix:///var/run/docker.sock", log: slog.New(slog.NewTextHandler(&logged, nil))}
	planted := plantForeignLock(t, tmp, rt.host)
	if path := rt.imageLockPath(); path != planted {
		t.Fatalf("imageLockPath = %s, want the temporary directory's %s", path, planted)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	unlock, err := rt.lockImages(ctx, true)
	if err != nil {
		t.Fatalf("a removal waits on a lock file another user made and holds: %v", err)
	}
	unlock()
	if !strings.Contains(logged.String(), "belongs to uid 65534") || !strings.Contains(logged.String(), planted) {
		t.Errorf("no warning naming the file and its owner: %q", logged.String())
	}
}

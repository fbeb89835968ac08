// Package enginelock is the Docker engine's image lock, shared by every
// cutover process of one user: builds hold it shared, removals of images
// exclusive. A leaf: the engine runtime (internal/runtime/docker) and the
// tests' cleanup (internal/testenv) take the same lock through it.
package enginelock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The classic builder reuses an image an earlier build left as a cache step
// (FROM scratch, then the same COPY) as the parent of the next step. Removing
// an image with its untagged parents (as RemoveImage, `cutover prune` and an
// integration teardown do) deletes those cache steps, and a build that has
// just picked one fails with "unable to find image sha256:…". Two projects
// on one machine share such steps whenever their first lines match, so every
// build holds the engine's image lock shared and every removal holds it
// exclusive: removals wait for the builds in flight, builds run together.
//
// The lock is a flock(2) on a file named after the engine's address, so it
// holds across processes (the daemon, a CLI prune, another pipeline) and
// between goroutines of one process alike. A removal that cannot take it in
// its context's time gives up with an error; if the file cannot be opened,
// or is not the user's own, the operation goes on unlocked, with a warning.
//
// The file is in a directory of the user's own (lockDir): every cutover
// process of one user must agree on it, and no other user may make or hold
// it. A file with a predictable name in the shared temporary directory, as
// before, let another local user make it first and hold its lock, stalling
// every build and removal for good.

// lockPoll is how often a waiter tries the lock again.
const lockPoll = 50 * time.Millisecond

// UserCacheDir is the directory the image locks' directory is made in (a
// variable for tests): ~/.cache of the user as the password database names
// it, whatever $HOME and $XDG_CACHE_HOME say, so that every cutover process
// of one user agrees on it: the daemon of a systemd unit without $HOME, the
// CLI, and a pipeline's host command, whose $HOME is its workspace. Without
// an entry there, os.UserCacheDir.
var UserCacheDir = func() (string, error) {
	if u, err := user.LookupId(strconv.Itoa(os.Getuid())); err == nil && filepath.IsAbs(u.HomeDir) {
		return filepath.Join(u.HomeDir, ".cache"), nil
	}
	return os.UserCacheDir()
}

// lockDir is the private directory (0700) the image locks are kept in:
// cutover/ in the user's cache directory, made if need be. "" when there is
// none to be had (no home, a read-only one).
func lockDir() string {
	base, err := UserCacheDir()
	if err != nil || !filepath.IsAbs(base) {
		return ""
	}
	dir := filepath.Join(base, "cutover")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return ""
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
		return ""
	}
	return dir
}

// Path is the lock file for the engine at host (as the Docker client names
// it: DOCKER_HOST, or unix:///var/run/docker.sock): one per user and engine
// address, in the user's lockDir; in the temporary directory only when there
// is no such directory (where Lock then checks that the file is the user's
// own).
func Path(host string) string {
	sum := sha256.Sum256([]byte(host))
	name := fmt.Sprintf("cutover-engine-%d-%s.lock", os.Getuid(), hex.EncodeToString(sum[:6]))
	if dir := lockDir(); dir != "" {
		return filepath.Join(dir, name)
	}
	return filepath.Join(os.TempDir(), name)
}

// Lock takes the image lock of the engine at host, shared (builds) or
// exclusive (removals), waiting until ctx ends. The returned function
// releases it. When the lock cannot be had at all, it says why on log and
// goes on unlocked.
func Lock(ctx context.Context, host string, exclusive bool, log *slog.Logger) (func(), error) {
	path := Path(host)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		log.Warn("image lock unavailable: a build and a removal of images may overlap", "file", path, "err", err)
		return func() {}, nil
	}
	// A file another user made (in a shared directory) is theirs to hold
	// for good: never wait on it.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || int(st.Uid) != os.Getuid() || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		if err == nil {
			err = fmt.Errorf("the file belongs to uid %d, not to this user (uid %d), or is not a regular file: remove it", st.Uid, os.Getuid())
		}
		log.Warn("image lock unavailable: a build and a removal of images may overlap", "file", path, "err", err)
		return func() {}, nil
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Close(fd) }, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			unix.Close(fd)
			log.Warn("image lock unavailable: a build and a removal of images may overlap", "file", path, "err", err)
			return func() {}, nil
		}
		select {
		case <-ctx.Done():
			unix.Close(fd)
			what := "a build"
			if exclusive {
				what = "builds in progress"
			}
			return nil, fmt.Errorf("waiting for %s on this engine (lock %s): %w", what, path, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
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
// its context's time gives up with an error; if the file cannot be opened
// (another user made it, say) the operation goes on unlocked, with a warning.

// lockPoll is how often a waiter tries the lock again.
const lockPoll = 50 * time.Millisecond

// imageLockPath is the lock file for this runtime's engine: one per user and
// engine address, in the temporary directory.
func (r *Runtime) imageLockPath() string {
	sum := sha256.Sum256([]byte(r.host))
	return filepath.Join(os.TempDir(), fmt.Sprintf("cutover-engine-%d-%s.lock", os.Getuid(), hex.EncodeToString(sum[:6])))
}

// lockImages takes the engine's image lock, shared (builds) or exclusive
// (removals), waiting until ctx ends. The returned function releases it.
func (r *Runtime) lockImages(ctx context.Context, exclusive bool) (func(), error) {
	path := r.imageLockPath()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		r.log.Warn("image lock unavailable: a build and a removal of images may overlap", "file", path, "err", err)
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
			r.log.Warn("image lock unavailable: a build and a removal of images may overlap", "file", path, "err", err)
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

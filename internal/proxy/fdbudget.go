package proxy

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
)

// Descriptors kept for the proxy itself. Clients holding connections
// could otherwise take every descriptor the process may open, and the
// proxy could then not accept on its admin socket (a rollback, a weight
// change), save state.json or run a health check. So the client
// connections it accepts use descriptors below acceptCap (the rest of the
// process's limit, RLIMIT_NOFILE, less a reserve: a sixteenth, between 32
// and 1024, at most half the limit), and its connections to targets those below dialCap (half the
// reserve is theirs); the other half is for the admin API, health checks and
// files. A connection accepted above the cap is closed and the listener
// paused for a second, as when out of descriptors; a target connection
// above it fails as out of descriptors (a 503 counted against no group).
type fdCaps struct{ accept, dial int }

var (
	fdCapsOnce sync.Once
	fdCapsVal  fdCaps
)

// descriptorCaps reads the limit once (after Go raised the soft limit to
// the hard one at start).
func descriptorCaps() fdCaps {
	fdCapsOnce.Do(func() {
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
			fdCapsVal = fdCaps{accept: 1 << 30, dial: 1 << 30}
			return
		}
		limit := int(rl.Cur)
		reserve := min(max(limit/16, 32), 1024, limit/2)
		fdCapsVal = fdCaps{accept: limit - reserve, dial: limit - reserve/2}
	})
	return fdCapsVal
}

// errTooManyConns is why a connection accepted above the cap was closed.
var errTooManyConns = errors.New("too many client connections: the descriptors left are kept for the proxy's admin API, health checks and targets")

// overDialCap reports whether a new target socket fd takes a descriptor
// kept for the proxy itself; the error is then the one of a process out
// of descriptors.
func overDialCap(fd int) error {
	if fd >= descriptorCaps().dial {
		return os.NewSyscallError("socket", syscall.EMFILE)
	}
	return nil
}

// overAcceptCap reports whether c, a connection the server accepted itself
// (a listener opened with TLS, or any listener off Linux), takes a
// descriptor kept for the proxy.
func overAcceptCap(c net.Conn) bool {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	over := false
	rc.Control(func(fd uintptr) { over = int(fd) >= descriptorCaps().accept })
	return over
}

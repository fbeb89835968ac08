package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Listening sockets outlive a crash of the proxy: its supervisor (Keep)
// holds a copy of each, so while the proxy is dead and until the restarted
// one accepts, a new connection waits in the socket's backlog instead of
// being refused, and the restarted proxy serves it. The proxy sends the
// supervisor the whole set of its listening sockets (SCM_RIGHTS over a unix
// datagram socket, with the listeners' addresses) each time the set
// changes; the supervisor keeps the last set and hands it to the next proxy
// it starts (inherited descriptors named in the environment), which serves
// an inherited socket where it would have opened one. A proxy that stops on
// purpose first sends the empty set, so a stopped proxy's ports refuse
// connections at once, as without a supervisor.

// Environment of a proxy started by Keep: the descriptor of its channel to
// the supervisor, and the addresses of the inherited listening sockets (a
// JSON array), which follow it (descriptors 4, 5, …).
const (
	keeperFDEnv = "CUTOVER_PROXY_KEEPER_FD"
	heldEnv     = "CUTOVER_PROXY_HELD_LISTENERS"
)

// maxHeld bounds the sockets one message carries (the kernel's
// SCM_MAX_FD is 253).
const maxHeld = 250

// heldSet is one message of the channel: listening sockets by address,
// or, from a proxy handing over to the next one (Released), that it has
// let go of the home: the supervisor may start the next proxy with the
// sockets it holds, and this one will not send again.
type heldSet struct {
	Addrs    []string `json:"addrs"`
	Released bool     `json:"released,omitempty"`
	Probe    bool     `json:"probe,omitempty"` // only asks whether the supervisor is there
}

// handover is the proxy's side: the channel to its supervisor and the
// sockets it inherited and has not used yet.
type handover struct {
	log       *slog.Logger
	conn      *net.UnixConn // nil: no supervisor to tell
	inherited map[string]*os.File
	sent      []string // the addresses last sent
	synced    bool     // a set was sent
}

// takeHandover reads what a supervisor passed in the environment (nothing
// when the proxy runs on its own) and clears it, so nothing the proxy
// starts inherits it.
func takeHandover(log *slog.Logger) *handover {
	h := &handover{log: log, inherited: map[string]*os.File{}}
	fdStr, held := os.Getenv(keeperFDEnv), os.Getenv(heldEnv)
	os.Unsetenv(keeperFDEnv)
	os.Unsetenv(heldEnv)
	if fdStr == "" {
		return h
	}
	fd, err := strconv.Atoi(fdStr)
	if err != nil || fd < 3 {
		log.Warn("ignoring a bad supervisor channel in the environment", "env", keeperFDEnv, "value", fdStr)
		return h
	}
	f := os.NewFile(uintptr(fd), "supervisor channel")
	c, err := net.FileConn(f)
	f.Close()
	if uc, ok := c.(*net.UnixConn); err == nil && ok {
		h.conn = uc
	} else {
		if c != nil {
			c.Close()
		}
		log.Warn("the supervisor channel is not a unix socket: listening sockets will not outlive a crash", "fd", fd, "err", err)
	}
	var addrs []string
	if held != "" {
		if err := json.Unmarshal([]byte(held), &addrs); err != nil {
			log.Warn("ignoring the inherited listening sockets: bad list in the environment", "env", heldEnv, "err", err)
			return h
		}
	}
	for i, a := range addrs {
		fd := fd + 1 + i
		unix.CloseOnExec(fd)
		h.inherited[a] = os.NewFile(uintptr(fd), "listener "+a)
	}
	return h
}

// listen returns the inherited socket for addr if there is one that is a
// TCP listener on addr's port, else a new one.
func (p *Proxy) listen(ctx context.Context, addr string) (net.Listener, error) {
	if h := p.handover; h != nil && h.inherited[addr] != nil {
		f := h.inherited[addr]
		delete(h.inherited, addr)
		ln, err := net.FileListener(f)
		f.Close()
		if err == nil {
			if _, port, _ := net.SplitHostPort(addr); samePort(ln.Addr(), port) {
				h.log.Info("serving the listening socket kept across the restart", "addr", addr)
				return ln, nil
			}
			ln.Close()
			err = fmt.Errorf("it is bound to %s", ln.Addr())
		}
		h.log.Warn("cannot serve the inherited listening socket: opening a new one", "addr", addr, "err", err)
	}
	// No TCP keep-alive probes on client connections (three socket options
	// per accepted connection): idle_timeout closes idle ones.
	return (&net.ListenConfig{KeepAlive: -1}).Listen(ctx, "tcp", addr)
}

func samePort(a net.Addr, port string) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && strconv.Itoa(ta.Port) == port
}

// closeUnused closes the inherited sockets no listener took.
func (h *handover) closeUnused() {
	for a, f := range h.inherited {
		h.log.Info("closing a listening socket kept across the restart: no listener uses it now", "addr", a)
		f.Close()
	}
	clear(h.inherited)
}

// send tells the supervisor the current set, if it changed. fds are
// borrowed: they stay open.
func (h *handover) send(addrs []string, fds []int) {
	if h.conn == nil || h.synced && slices.Equal(addrs, h.sent) {
		return
	}
	if len(addrs) > maxHeld {
		h.log.Warn("the supervisor keeps the first listening sockets only", "kept", maxHeld, "listeners", len(addrs))
		addrs, fds = addrs[:maxHeld], fds[:maxHeld]
	}
	msg, _ := json.Marshal(heldSet{Addrs: addrs})
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	h.conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, _, err := h.conn.WriteMsgUnix(msg, oob, nil); err != nil {
		// The supervisor is gone (killed: the proxy runs unsupervised) or
		// stuck: the sockets just do not outlive a crash.
		h.log.Warn("telling the supervisor the listening sockets", "err", err)
		return
	}
	h.sent, h.synced = slices.Clone(addrs), true
}

// probe checks the supervisor is there: it sends the set it holds again.
func (h *handover) probe() error {
	if h.conn == nil {
		return errNoSupervisor
	}
	msg, _ := json.Marshal(heldSet{Addrs: []string{}, Probe: true})
	h.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := h.conn.Write(msg)
	return err
}

// release tells the supervisor that this proxy has let go of the home and
// stops telling it anything: the sockets it holds are the next proxy's.
func (h *handover) release() error {
	if h.conn == nil {
		return errNoSupervisor
	}
	msg, _ := json.Marshal(heldSet{Released: true})
	h.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := h.conn.Write(msg)
	h.conn.Close()
	h.conn = nil
	return err
}

var errNoSupervisor = errors.New("the proxy runs without its supervisor (`cutover proxy run`): nothing can start the next one")

// sendListeners tells the supervisor the proxy's listening sockets. Called
// with p.mu held.
func (p *Proxy) sendListeners() {
	h := p.handover
	if h == nil || h.conn == nil {
		return
	}
	var addrs []string
	var fds []int
	for _, addr := range slices.Sorted(maps.Keys(p.listeners)) {
		if fd := p.listeners[addr].socketDup(); fd >= 0 {
			addrs = append(addrs, addr)
			fds = append(fds, fd)
		}
	}
	h.send(addrs, fds)
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// socketDup returns a duplicate of l's listening socket, or -1.
func (l *listener) socketDup() int {
	if l.loop != nil {
		fd, err := unix.FcntlInt(uintptr(l.loop.socket()), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return -1
		}
		return fd
	}
	sc, ok := l.ln.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil {
		return -1
	}
	return fd
}

// heldListeners is the supervisor's side: the proxy's listening sockets as
// it last sent them.
type heldListeners struct {
	log   *slog.Logger
	mu    sync.Mutex
	addrs []string
	files []*os.File
}

// channel opens the channel for the next proxy: it returns the proxy's end
// and the environment and descriptors to start it with; receive reads the
// proxy's messages on the other end until stop.
func (k *heldListeners) channel() (conn *net.UnixConn, theirs *os.File, env []string, extra []*os.File, err error) {
	syscall.ForkLock.RLock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err == nil {
		unix.CloseOnExec(fds[0])
		unix.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("creating the channel to the proxy: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "proxy channel")
	theirs = os.NewFile(uintptr(fds[1]), "supervisor channel")
	c, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		theirs.Close()
		return nil, nil, nil, nil, fmt.Errorf("the channel to the proxy: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	addrs, _ := json.Marshal(k.addrs)
	env = []string{keeperFDEnv + "=3", heldEnv + "=" + string(addrs)}
	extra = append([]*os.File{theirs}, k.files...)
	return c.(*net.UnixConn), theirs, env, extra, nil
}

// receive keeps the sets the proxy sends on conn until reading fails
// (conn closed or its deadline passed) or the proxy released the home,
// which it reports by closing released.
func (k *heldListeners) receive(conn *net.UnixConn, released chan<- struct{}) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(maxHeld*4))
	for {
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		var fds []int
		if oobn > 0 {
			msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				if rights, err := unix.ParseUnixRights(&m); err == nil {
					fds = append(fds, rights...)
				}
			}
			if perr != nil {
				k.log.Warn("a bad message from the proxy", "err", perr)
			}
		}
		var set heldSet
		err = json.Unmarshal(buf[:n], &set)
		if err == nil && set.Released {
			for _, fd := range fds {
				unix.Close(fd)
			}
			close(released)
			return
		}
		if err == nil && set.Probe {
			continue
		}
		if err != nil || len(set.Addrs) != len(fds) {
			k.log.Warn("a bad message from the proxy: keeping the listening sockets it sent before", "err", err, "addrs", len(set.Addrs), "sockets", len(fds))
			for _, fd := range fds {
				unix.Close(fd)
			}
			continue
		}
		files := make([]*os.File, len(fds))
		for i, fd := range fds {
			unix.CloseOnExec(fd)
			files[i] = os.NewFile(uintptr(fd), "listener "+set.Addrs[i])
		}
		k.replace(set.Addrs, files)
	}
}

func (k *heldListeners) replace(addrs []string, files []*os.File) {
	k.mu.Lock()
	old := k.files
	k.addrs, k.files = addrs, files
	k.mu.Unlock()
	for _, f := range old {
		f.Close()
	}
}

// finish reads what the proxy sent before it exited, then closes conn.
// The proxy's messages are queued by the time it is reaped; the short
// deadline ends the read that waits after them.
func (k *heldListeners) finish(conn *net.UnixConn, received <-chan struct{}) {
	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	<-received
	conn.Close()
}

// close closes every socket held.
func (k *heldListeners) close() { k.replace(nil, nil) }

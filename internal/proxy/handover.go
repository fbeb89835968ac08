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
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
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
//
// A restart (`cutover proxy restart`) goes over the same channel, both
// ways. The supervisor tells the running proxy to freeze (it takes no more
// changes, so state.json stays as the next one reads it), starts the next
// proxy in standby beside it with the sockets, and once that one serves
// them (its targets checked, its listeners open: "ready") tells the running
// one to step down: it lets go of its admin socket and lock and finishes
// its requests, and the standby takes the lock and goes on as the proxy.
// If the next one fails before it is ready, the running one thaws and
// serves on: a restart never leaves nothing serving.

// Environment of a proxy started by Keep: the descriptor of its channel to
// the supervisor, the addresses of the inherited listening sockets (a JSON
// array), which follow it (descriptors 4, 5, …), and whether it starts in
// standby (a restart's next proxy).
const (
	keeperFDEnv = "CUTOVER_PROXY_KEEPER_FD"
	heldEnv     = "CUTOVER_PROXY_HELD_LISTENERS"
	standbyEnv  = "CUTOVER_PROXY_STANDBY"
)

// Commands from the supervisor to its proxy (cmdGone is the proxy's own:
// its channel ended, the supervisor is gone).
const (
	cmdFreeze   = "freeze"   // take no more changes, then say frozen
	cmdThaw     = "thaw"     // the restart failed: take changes again
	cmdStepDown = "stepdown" // the next proxy is ready: let go and finish
	cmdPing     = "ping"     // say alive if the proxy still works
	cmdGone     = "gone"
)

// chanType is the channel's socket type: on Linux a sequenced-packet
// socket, whose end tells the proxy that its supervisor is gone (a frozen
// proxy then thaws); a datagram socket elsewhere.
func chanType() int {
	if runtime.GOOS == "linux" {
		return unix.SOCK_SEQPACKET
	}
	return unix.SOCK_DGRAM
}

// maxHeld bounds the sockets one message carries (the kernel's
// SCM_MAX_FD is 253).
const maxHeld = 250

// chanMsg is one message of the channel. From the proxy: its listening
// sockets by address (Addrs, with the descriptors), or Frozen (it froze on
// the supervisor's command), or Ready (a standby serves the sockets), or
// Alive (its answer to a ping). From the supervisor: a command (Cmd).
type chanMsg struct {
	Addrs []string `json:"addrs,omitempty"`
	Set   bool     `json:"set,omitempty"` // Addrs is (a part of) the set; it may be empty
	// Part of Parts: a set of more sockets than one message carries comes
	// in parts, in order; the supervisor takes it when the last is in.
	Part   int    `json:"part,omitempty"`
	Parts  int    `json:"parts,omitempty"`
	Frozen bool   `json:"frozen,omitempty"`
	Ready  bool   `json:"ready,omitempty"`
	Alive  bool   `json:"alive,omitempty"`
	Cmd    string `json:"cmd,omitempty"`
}

// handover is the proxy's side: the channel to its supervisor and the
// sockets it inherited and has not used yet.
type handover struct {
	log       *slog.Logger
	conn      *net.UnixConn // nil: no supervisor to tell
	inherited map[string]*os.File
	sent      []string // the addresses last sent
	synced    bool     // a set was sent
	// standby: started by a restart, beside the running proxy; it sends no
	// set until it has the home's lock (primary)
	standby bool
	cmds    chan string // the supervisor's commands
}

// takeHandover reads what a supervisor passed in the environment (nothing
// when the proxy runs on its own) and clears it, so nothing the proxy
// starts inherits it.
func takeHandover(log *slog.Logger) *handover {
	h := &handover{log: log, inherited: map[string]*os.File{}, cmds: make(chan string, 4)}
	fdStr, held, standby := os.Getenv(keeperFDEnv), os.Getenv(heldEnv), os.Getenv(standbyEnv)
	os.Unsetenv(keeperFDEnv)
	os.Unsetenv(heldEnv)
	os.Unsetenv(standbyEnv)
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
		h.standby = standby == "1"
		go h.readCommands(uc)
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

// readCommands passes the supervisor's commands to cmds until the channel
// closes.
func (h *handover) readCommands(c *net.UnixConn) {
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				h.cmds <- cmdGone
			}
			return
		}
		var m chanMsg
		if json.Unmarshal(buf[:n], &m) == nil && m.Cmd != "" {
			h.cmds <- m.Cmd
		}
	}
}

// tell sends m to the supervisor.
func (h *handover) tell(m chanMsg, fds []int) error {
	if h.conn == nil {
		return errNoSupervisor
	}
	return writeMsg(h.conn, m, fds)
}

// writeMsg writes one message of the channel, with descriptors (either
// side), within a second.
func writeMsg(c *net.UnixConn, m chanMsg, fds []int) error {
	msg, _ := json.Marshal(m)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _, err := c.WriteMsgUnix(msg, oob, nil)
	return err
}

// detach stops telling the supervisor anything (a proxy that stepped down:
// the sockets the supervisor holds are the next proxy's now).
func (h *handover) detach() { h.conn = nil }

var errNoSupervisor = errors.New("the proxy runs without its supervisor")

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
	if h.conn == nil || h.standby || h.synced && slices.Equal(addrs, h.sent) {
		return
	}
	parts := max(1, (len(addrs)+maxHeld-1)/maxHeld)
	for i := range parts {
		lo, hi := i*maxHeld, min((i+1)*maxHeld, len(addrs))
		if err := h.tell(chanMsg{Addrs: addrs[lo:hi], Set: true, Part: i, Parts: parts}, fds[lo:hi]); err != nil {
			// The supervisor is gone (killed: the proxy runs unsupervised)
			// or stuck: the sockets just do not outlive a crash.
			h.log.Warn("telling the supervisor the listening sockets", "err", err)
			return
		}
	}
	h.sent, h.synced = slices.Clone(addrs), true
}

// sendListeners tells the supervisor the proxy's listening sockets. Called
// with p.mu held.
func (p *Proxy) sendListeners() {
	h := p.handover
	if h == nil || h.conn == nil || h.standby {
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

// child is a proxy the supervisor started, and its channel.
type child struct {
	cmd     *exec.Cmd
	conn    *net.UnixConn
	started time.Time
	done    chan error    // its exit, once its last messages are read
	exited  chan struct{} // closed once done was read, for a proxy that stepped down
	alive   atomic.Int64  // when it last said it works (monoNow; its start before)
	frozen  chan struct{} // gets one when it says it froze (emptied before each freeze)
	ready   chan struct{} // closed when it says it serves (a standby)
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// monoEpoch and monoNow read the monotonic clock: a step of the wall
// clock (NTP, a resumed VM) must not make a proxy look silent for long.
var monoEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(monoEpoch)) }

// quiet is how long c has not said it works.
func (c *child) quiet() time.Duration { return time.Duration(monoNow() - c.alive.Load()) }

// tell sends the proxy a command; a proxy that is gone cannot take it.
func (c *child) tell(cmd string) error { return writeMsg(c.conn, chanMsg{Cmd: cmd}, nil) }

// freeze tells the proxy to freeze; its answer comes on c.frozen (one
// from an earlier restart is dropped first).
func (c *child) freeze() error {
	select {
	case <-c.frozen:
	default:
	}
	return c.tell(cmdFreeze)
}

// start starts exe args as a proxy with the sockets held (in standby: a
// restart's next proxy) and reads its messages until it exits.
func (k *heldListeners) start(exe string, args []string, standby bool) (*child, error) {
	syscall.ForkLock.RLock()
	fds, err := unix.Socketpair(unix.AF_UNIX, chanType(), 0)
	if err == nil {
		unix.CloseOnExec(fds[0])
		unix.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("creating the channel to the proxy: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "proxy channel")
	theirs := os.NewFile(uintptr(fds[1]), "supervisor channel")
	defer theirs.Close()
	fc, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, fmt.Errorf("the channel to the proxy: %w", err)
	}
	c := &child{cmd: exec.Command(exe, args...), conn: fc.(*net.UnixConn), done: make(chan error, 1), exited: make(chan struct{}), frozen: make(chan struct{}, 1), ready: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = os.Stdout, os.Stderr
	k.mu.Lock()
	addrs, _ := json.Marshal(k.addrs)
	c.cmd.Env = append(os.Environ(), keeperFDEnv+"=3", heldEnv+"="+string(addrs))
	if standby {
		c.cmd.Env = append(c.cmd.Env, standbyEnv+"=1")
	}
	c.cmd.ExtraFiles = append([]*os.File{theirs}, k.files...)
	c.started = time.Now()
	c.alive.Store(monoNow())
	err = c.cmd.Start()
	k.mu.Unlock()
	if err != nil {
		c.conn.Close()
		return nil, fmt.Errorf("starting the cutover proxy (%s): %w", exe, err)
	}
	received := make(chan struct{})
	go func() {
		defer close(received)
		k.receive(c)
	}()
	go func() {
		err := c.cmd.Wait()
		// Read what it sent before it exited (queued by the time it is
		// reaped); the short deadline ends the read that waits after.
		c.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		<-received
		c.conn.Close()
		c.done <- err
	}()
	return c, nil
}

// receive keeps the sets c sends, and reports its other messages, until
// reading fails (its channel closed, or the deadline after its exit).
func (k *heldListeners) receive(c *child) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(maxHeld*4))
	var ready sync.Once
	// a set that comes in parts, until its last
	var pendAddrs []string
	var pendFiles []*os.File
	dropPending := func() {
		for _, f := range pendFiles {
			f.Close()
		}
		pendAddrs, pendFiles = nil, nil
	}
	defer dropPending()
	for {
		n, oobn, _, _, err := c.conn.ReadMsgUnix(buf, oob)
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
		var m chanMsg
		err = json.Unmarshal(buf[:n], &m)
		if err == nil && m.Set && m.Part == 0 {
			dropPending() // a new set (what an earlier one left is stale)
		}
		switch {
		case err == nil && m.Set && len(m.Addrs) == len(fds) && m.Part*maxHeld == len(pendFiles) && m.Part < max(m.Parts, 1):
			for i, fd := range fds {
				unix.CloseOnExec(fd)
				pendAddrs = append(pendAddrs, m.Addrs[i])
				pendFiles = append(pendFiles, os.NewFile(uintptr(fd), "listener "+m.Addrs[i]))
			}
			if m.Part == max(m.Parts, 1)-1 {
				k.replace(pendAddrs, pendFiles)
				pendAddrs, pendFiles = nil, nil
			}
			continue
		case err == nil && m.Frozen:
			select {
			case c.frozen <- struct{}{}:
			default:
			}
		case err == nil && m.Ready:
			ready.Do(func() { close(c.ready) })
		case err == nil && m.Alive:
			c.alive.Store(monoNow())
		default:
			k.log.Warn("a bad message from the proxy: keeping the listening sockets it sent before", "err", err, "addrs", len(m.Addrs), "sockets", len(fds))
			dropPending()
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
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

// close closes every socket held.
func (k *heldListeners) close() { k.replace(nil, nil) }

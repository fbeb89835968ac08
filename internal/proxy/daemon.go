package proxy

import (
	"context"
	"errors"
	"fmt"
	"github.com/cutoverdev/cutover/internal/atomicfile"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// PprofEnv, set to 1 in the environment of `cutover proxy run`, serves Go's
// profiles (net/http/pprof) under /debug/pprof/ on the admin socket: for
// measuring the proxy under load, e.g.
// curl --unix-socket admin.sock http://proxy/debug/pprof/profile?seconds=10
const PprofEnv = "CUTOVER_PROXY_PPROF"

// proxyGCPercent is the proxy process's GOGC unless the environment sets one.
const proxyGCPercent = 400

// DefaultProcs is how many threads `cutover proxy run` runs Go code on at
// once (RunOptions.Procs): one more than the CPUs Go would use. Plain
// listeners are served by event loops, one per P but one (loopCount), so
// there is one loop per CPU, as nginx's `worker_processes auto` has one
// worker per CPU, and one P left for the rest (health checks, the admin
// API, TLS and handed-off connections). GOMAXPROCS in the proxy's
// environment overrides it.
func DefaultProcs() int { return proxyProcs(initialProcs) }

func proxyProcs(cpus int) int { return max(1, cpus) + 1 }

// initialProcs is Go's own GOMAXPROCS for this machine or container, read
// before anything changes it.
var initialProcs = runtime.GOMAXPROCS(0)

// RunOptions configure Run.
type RunOptions struct {
	Version string
	Logger  *slog.Logger // default: text on stderr (proxy.log when started by EnsureRunning)
	// Procs, when > 0 and the environment has no GOMAXPROCS, is the
	// process's GOMAXPROCS (DefaultProcs for `cutover proxy run`); 0 leaves
	// it alone.
	Procs int
	// ShutdownGrace is how long in-flight requests may take after SIGTERM; default 10s.
	ShutdownGrace time.Duration
}

// Run is the body of `cutover proxy run`: it serves the routes persisted in
// home/proxy/state.json at once, then the admin API on home/proxy/admin.sock,
// until ctx ends or SIGTERM/SIGINT arrives; then it stops accepting, lets
// in-flight requests finish (up to ShutdownGrace) and removes its pid file
// and socket. Only one proxy runs per home: a second one fails, naming the
// first one's pid.
func Run(ctx context.Context, home string, opts RunOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 10 * time.Second
	}
	dir := proxyDir(home)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the proxy directory: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	h := takeHandover(log)
	// A standby (a restart's next proxy) starts beside the running one,
	// which holds the home until it steps down; it takes the lock then.
	var unlockOnce sync.Once
	unlockHome := func() {}
	unlock := func() { unlockOnce.Do(func() { unlockHome() }) }
	defer unlock()
	sock := socketPath(home)
	if !h.standby {
		u, err := lockHome(home)
		if err != nil {
			return err
		}
		unlockHome = u
		if hl, err := NewClient(home).Ping(ctx); err == nil {
			return fmt.Errorf("the cutover proxy is already running (pid %d, socket %s)", hl.PID, sock)
		}
		if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing the stale socket %s: %w", sock, err)
		}
	}

	if os.Getenv("GOGC") == "" {
		// The proxy's live heap is a few MB; forwarding a request allocates
		// next to nothing (pooled buffers), but bodies, TLS handshakes and
		// the admin API do: 400 keeps the collector rare for some MB.
		debug.SetGCPercent(proxyGCPercent)
	}
	if opts.Procs > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(opts.Procs)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p := New(Options{Logger: log, Registerer: reg, ACMEDir: acmeDir(home)})
	closeProxy := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.ShutdownGrace)
		defer cancel()
		if err := p.Close(cctx); err != nil {
			log.Warn("shutting down", "err", err)
		}
	}

	path := statePath(home)
	sv, err := loadSaved(path)
	if err != nil {
		closeProxy()
		return err
	}
	// The restored targets get their first check before the listeners
	// open (at most 3s), so a request does not meet a 503 for want of a
	// checked target: one that came while the proxy was down waits in the
	// backlog of the socket the supervisor kept. Pings are answered after
	// that too, so a controller that sees the proxy up sees its routes
	// served.
	targetsOnly := sv.State
	targetsOnly.Listeners = nil
	err = p.apply(ctx, targetsOnly, true)
	if err == nil {
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		p.waitFirstChecks(wctx)
		wcancel()
		p.mu.Lock()
		p.handover = h
		p.mu.Unlock()
		err = p.apply(ctx, sv.State, true)
	}
	p.mu.Lock()
	h.closeUnused()
	p.mu.Unlock()
	if err != nil {
		closeProxy()
		return fmt.Errorf("%s: cannot serve the saved routes: %w", path, err)
	}
	log.Info("serving saved routes", "listeners", len(sv.State.Listeners), "target_groups", len(sv.State.TargetGroups), "generation", sv.Generation)
	if h.standby {
		// Serving beside the running proxy: tell the supervisor, which
		// tells that one to step down; then take the home from it. What
		// could still fail after that is checked first: once the running
		// one steps down this one must go on.
		if err := checkHome(home); err != nil {
			closeProxy()
			return err
		}
		if err := h.tell(chanMsg{Ready: true}, nil); err != nil {
			closeProxy()
			return fmt.Errorf("telling the supervisor this proxy is ready: %w", err)
		}
		u, err := waitLockHome(ctx, home)
		if err != nil {
			closeProxy()
			return err
		}
		unlockHome = u
		if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
			closeProxy()
			return fmt.Errorf("removing the stale socket %s: %w", sock, err)
		}
		p.mu.Lock()
		h.standby = false
		p.sendListeners()
		p.mu.Unlock()
	}

	ln, err := net.Listen("unix", sock)
	if err != nil {
		closeProxy()
		return fmt.Errorf("listening on the admin socket %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		closeProxy()
		return err
	}
	// After a hand-over the socket and pid file are the next proxy's.
	handedOver := false
	defer func() {
		if !handedOver {
			os.Remove(sock)
		}
	}()
	if err := atomicfile.Write(pidPath(home), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		ln.Close()
		closeProxy()
		return fmt.Errorf("writing the pid file: %w", err)
	}
	defer func() {
		if !handedOver {
			os.Remove(pidPath(home))
		}
	}()

	a := &admin{p: p, path: path, version: opts.Version, started: time.Now(), gatherer: reg, saved: sv, pprof: os.Getenv(PprofEnv) == "1"}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	_ = os.Remove(restartingPath(home)) // the hand-over to this proxy is done
	log.Info("cutover proxy started", "pid", os.Getpid(), "socket", sock, "version", opts.Version)

	var runErr error
	var pinging atomic.Bool     // a ping's check runs
	var thawBy <-chan time.Time // a frozen proxy's bound on its restart
	thaw := func(why string) {
		a.retire(false)
		_ = os.Remove(restartingPath(home))
		thawBy = nil
		log.Warn(why + ": this proxy serves on and takes changes again")
	}
serve:
	for {
		select {
		case <-ctx.Done():
			break serve
		case <-thawBy:
			thaw("no new proxy took over within " + frozenMax.String() + " of the restart")
		case err := <-served:
			runErr = fmt.Errorf("admin API stopped: %w", err)
			break serve
		case cmd := <-h.cmds:
			switch cmd {
			case cmdFreeze:
				// A restart: take no more changes (the next proxy reads
				// state.json as it is now); clients wait for the next one.
				if err := atomicfile.Write(restartingPath(home), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
					log.Warn("writing the restart marker", "err", err)
				}
				a.retire(true)
				thawBy = time.After(frozenMax)
				if err := h.tell(chanMsg{Frozen: true}, nil); err != nil {
					thaw("telling the supervisor this proxy froze: " + err.Error())
					continue
				}
				log.Info("restarting: changes wait for the next proxy")
			case cmdThaw:
				thaw("the restart failed")
			case cmdPing:
				if pinging.CompareAndSwap(false, true) {
					go func() {
						defer pinging.Store(false)
						if p.responsive(pingWait) {
							p.mu.Lock() // a step-down detaches h under it
							h.tell(chanMsg{Alive: true}, nil)
							p.mu.Unlock()
						}
					}()
				}
			case cmdGone:
				if thawBy != nil {
					thaw("the supervisor is gone during the restart")
				} else {
					log.Warn("the supervisor is gone: the listening sockets will not outlive a crash")
				}
			case cmdStepDown:
				// The next proxy serves the sockets too: let go of the
				// admin socket and the lock (it waits for them), then
				// finish the requests in flight.
				sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if err := srv.Shutdown(sctx); err != nil {
					srv.Close()
				}
				cancel()
				_ = os.Remove(sock)
				handedOver = true
				p.mu.Lock()
				h.detach()
				p.mu.Unlock()
				unlock()
				log.Info("handed over to the next proxy: finishing the requests in flight", "grace", opts.ShutdownGrace.String())
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.ShutdownGrace)
				if err := p.close(cctx, handOverDrain); err != nil {
					log.Warn("shutting down", "err", err)
				}
				cancel()
				// Connections taken over (WebSockets, HTTP/1.0 answers
				// ended by the close) are not cut by a restart: they go on
				// until they end (or the longest deregistration delay, or
				// a stop).
				if n := p.waitTunnels(ctx); n > 0 {
					log.Warn("handed over: closing the connections taken over still open", "open", n)
				}
				log.Info("cutover proxy stopped")
				return nil
			}
		}
	}
	log.Info("cutover proxy stopping", "grace", opts.ShutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = srv.Shutdown(sctx)
	cancel()
	closeProxy()
	log.Info("cutover proxy stopped")
	return runErr
}

// pingWait bounds a ping's check of the proxy's admin lock and each event
// loop: a part that does not respond within it leaves the ping unanswered.
const pingWait = 5 * time.Second

// frozenMax bounds how long a proxy stays frozen for a restart (the
// supervisor's wait for the new one is 30s): then it thaws by itself.
const frozenMax = 45 * time.Second

// checkHome checks that a standby can take over the home: its admin socket
// and pid file can be written where they go.
func checkHome(home string) error {
	for _, p := range []string{socketPath(home), pidPath(home)} {
		if st, err := os.Lstat(p); err == nil && st.IsDir() {
			return fmt.Errorf("%s is a directory: remove it", p)
		}
	}
	f, err := os.CreateTemp(proxyDir(home), ".standby-*")
	if err != nil {
		return fmt.Errorf("the proxy directory is not writable: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// waitLockHome takes the home's lock once the proxy holding it lets go (a
// standby's wait for the proxy it replaces), until ctx ends.
func waitLockHome(ctx context.Context, home string) (func(), error) {
	return flockHome(home, 10*time.Millisecond, ctx.Err)
}

// flockHome takes an exclusive lock on home/proxy/proxy.lock, trying again
// every so often while another process holds it; stop, asked after each
// try that found it held, ends the wait with its error.
func flockHome(home string, every time.Duration, stop func() error) (func(), error) {
	f, err := os.OpenFile(lockPath(home), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the proxy lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", lockPath(home), err)
		}
		if err := stop(); err != nil {
			f.Close()
			return nil, err
		}
		time.Sleep(every)
	}
}

// lockWait bounds how long a starting proxy waits for a dying one's lock.
const lockWait = 10 * time.Second

// lockHome takes an exclusive lock on home/proxy/proxy.lock for the life of
// the process (the kernel releases it even on SIGKILL), so two proxies
// never serve one home.
func lockHome(home string) (func(), error) {
	// A proxy that was just killed may hold the lock a moment longer (the
	// kernel releases it when the process has finished exiting, which waits
	// for a pending fsync); a live one answers on its socket. So wait a
	// little while nobody answers, and fail at once when somebody does.
	deadline := time.Now().Add(lockWait)
	return flockHome(home, 50*time.Millisecond, func() error {
		pctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, pingErr := NewClient(home).Ping(pctx)
		cancel()
		if pingErr == nil || time.Now().After(deadline) {
			pid, _ := readPID(home)
			return fmt.Errorf("the cutover proxy is already running (pid %d, socket %s): stop it with `cutover proxy stop`", pid, socketPath(home))
		}
		return nil
	})
}

func readPID(home string) (int, error) { return readPIDFile(pidPath(home)) }

// readPIDFile reads the PID a pid file starts with: "PID\n" (proxy.pid,
// and supervisor.pid as older versions wrote it) or "PID STARTTIME\n"
// (supervisor.pid, see readPIDStartFile).
func readPIDFile(path string) (int, error) {
	pid, _, err := readPIDStartFile(path)
	return pid, err
}

// readPIDStartFile reads a pid file and the start time after the PID (as
// proc.StartTime gave it), 0 when the file has none (an older cutover's).
func readPIDStartFile(path string) (int, uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 || len(fields) > 2 {
		return 0, 0, fmt.Errorf("%s: not a pid: %q", path, b)
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 0 {
		return 0, 0, fmt.Errorf("%s: not a pid: %q", path, b)
	}
	var start uint64
	if len(fields) == 2 {
		if start, err = strconv.ParseUint(fields[1], 10, 64); err != nil || start == 0 {
			return 0, 0, fmt.Errorf("%s: not a pid and start time: %q", path, b)
		}
	}
	return pid, start, nil
}

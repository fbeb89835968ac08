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
	unlock, err := lockHome(home)
	if err != nil {
		return err
	}
	defer unlock()

	sock := socketPath(home)
	if h, err := NewClient(home).Ping(ctx); err == nil {
		return fmt.Errorf("the cutover proxy is already running (pid %d, socket %s)", h.PID, sock)
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the stale socket %s: %w", sock, err)
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
	if err := p.apply(ctx, sv.State, true); err != nil {
		closeProxy()
		return fmt.Errorf("%s: cannot serve the saved routes: %w", path, err)
	}
	// Answer pings only once the restored targets had their first check, so
	// a controller that sees the proxy up also sees its routes served.
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	p.waitFirstChecks(wctx)
	wcancel()
	log.Info("serving saved routes", "listeners", len(sv.State.Listeners), "target_groups", len(sv.State.TargetGroups), "generation", sv.Generation)

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
	defer os.Remove(sock)
	if err := atomicfile.Write(pidPath(home), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		ln.Close()
		closeProxy()
		return fmt.Errorf("writing the pid file: %w", err)
	}
	defer os.Remove(pidPath(home))

	a := &admin{p: p, path: path, version: opts.Version, started: time.Now(), gatherer: reg, saved: sv, pprof: os.Getenv(PprofEnv) == "1"}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("cutover proxy started", "pid", os.Getpid(), "socket", sock, "version", opts.Version)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-served:
		runErr = fmt.Errorf("admin API stopped: %w", err)
	}
	log.Info("cutover proxy stopping", "grace", opts.ShutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = srv.Shutdown(sctx)
	cancel()
	closeProxy()
	log.Info("cutover proxy stopped")
	return runErr
}

// lockWait bounds how long a starting proxy waits for a dying one's lock.
const lockWait = 10 * time.Second

// lockHome takes an exclusive lock on home/proxy/proxy.lock for the life of
// the process (the kernel releases it even on SIGKILL), so two proxies
// never serve one home.
func lockHome(home string) (func(), error) {
	f, err := os.OpenFile(lockPath(home), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the proxy lock: %w", err)
	}
	// A proxy that was just killed may hold the lock a moment longer (the
	// kernel releases it when the process has finished exiting, which waits
	// for a pending fsync); a live one answers on its socket. So wait a
	// little while nobody answers, and fail at once when somebody does.
	deadline := time.Now().Add(lockWait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", lockPath(home), err)
		}
		pctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, pingErr := NewClient(home).Ping(pctx)
		cancel()
		if pingErr == nil || time.Now().After(deadline) {
			f.Close()
			pid, _ := readPID(home)
			return nil, fmt.Errorf("the cutover proxy is already running (pid %d, socket %s): stop it with `cutover proxy stop`", pid, socketPath(home))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readPID(home string) (int, error) { return readPIDFile(pidPath(home)) }

func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: not a pid: %q", path, b)
	}
	return pid, nil
}

package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cutoverdev/cutover/internal/atomicfile"
	"github.com/cutoverdev/cutover/internal/proc"
)

func stoppingPath(home string) string   { return proxyDir(home) + "/stopping" }
func supervisorPath(home string) string { return proxyDir(home) + "/supervisor.pid" }

// supervisorRecord is what supervisor.pid holds: "PID STARTTIME\n", the
// start time telling this process from a later one that reuses its PID
// once it dies without removing the file (SIGKILL, the OOM killer). Just
// "PID\n" where the start time cannot be read (no /proc).
func supervisorRecord() []byte {
	pid := os.Getpid()
	if start := proc.StartTime(pid); start != 0 {
		return []byte(strconv.Itoa(pid) + " " + strconv.FormatUint(start, 10) + "\n")
	}
	return []byte(strconv.Itoa(pid) + "\n")
}

// KeepOptions bound Keep's restarts.
type KeepOptions struct {
	Logger *slog.Logger
	// MinUptime: a proxy that dies sooner did not start (its port is taken,
	// another proxy holds the home) and is not started again. Default 2s.
	MinUptime time.Duration
	// MaxRestarts within Window, after which Keep gives up (a crash loop).
	// Defaults 10 and 10 minutes.
	MaxRestarts int
	Window      time.Duration
	// Backoff before a restart; default 100ms.
	Backoff time.Duration
	// StandbyTimeout bounds a restart's wait for the new proxy to be
	// ready; default 30s.
	StandbyTimeout time.Duration
	// HangTimeout: a proxy that has not said it works for this long (it
	// answers a ping every PingEvery once its admin lock and event loops
	// respond) is hung, and is killed and started again. Defaults 30s
	// and 5s.
	HangTimeout, PingEvery time.Duration
}

// Keep runs the proxy (exe args..., such as `cutover proxy run`) as its
// child and starts it again when it dies unexpectedly: a crash, an OOM kill,
// a SIGKILL. The restarted proxy serves the persisted routes at once, so
// production traffic comes back without any cutover command running. It
// returns when the proxy exits cleanly (`cutover proxy stop`, which also
// marks the stop as deliberate so a proxy it has to SIGKILL stays down),
// when ctx ends or on SIGTERM/SIGINT (the proxy gets SIGTERM and its grace),
// or when the proxy fails at start or crash-loops. Killing Keep itself
// leaves the proxy running, unsupervised.
func Keep(ctx context.Context, home, exe string, args []string, o KeepOptions) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.MinUptime <= 0 {
		o.MinUptime = 2 * time.Second
	}
	if o.MaxRestarts <= 0 {
		o.MaxRestarts = 10
	}
	if o.Window <= 0 {
		o.Window = 10 * time.Minute
	}
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	if o.StandbyTimeout <= 0 {
		o.StandbyTimeout = standbyReadyTimeout
	}
	if o.HangTimeout <= 0 {
		o.HangTimeout = 30 * time.Second
	}
	if o.PingEvery <= 0 {
		o.PingEvery = 5 * time.Second
	}
	if err := os.MkdirAll(proxyDir(home), 0o700); err != nil {
		return fmt.Errorf("creating the proxy directory: %w", err)
	}
	// supervisor.pid names this process once its proxy is up (a Keep whose
	// proxy cannot start, because another proxy serves home, must not
	// replace the file of the Keep supervising that one).
	wrotePID := false
	defer func() {
		if pid, err := readPIDFile(supervisorPath(home)); wrotePID && err == nil && pid == os.Getpid() {
			_ = os.Remove(supervisorPath(home))
		}
	}()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	// SIGHUP (`cutover proxy restart`): the proxy hands over to a new one.
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)

	// The proxy's listening sockets, kept across its crashes (handover.go).
	held := &heldListeners{log: o.Logger}
	defer held.close()

	cur, err := held.start(exe, args, false)
	if err != nil {
		return err
	}
	// Proxies that stepped down in a restart and still finish their
	// requests and upgraded connections: a stop ends them too.
	var oldMu sync.Mutex
	olds := map[*child]bool{}
	defer func() {
		oldMu.Lock()
		left := slices.Collect(maps.Keys(olds))
		oldMu.Unlock()
		for _, c := range left {
			c.cmd.Process.Signal(syscall.SIGTERM)
		}
		deadline := time.Now().Add(stopKill)
		for _, c := range left {
			select {
			case <-c.exited:
			case <-time.After(time.Until(deadline)):
				c.cmd.Process.Kill()
				<-c.exited
			}
		}
	}()
	var (
		restarts []time.Time
		// A restart in progress: cur was told to freeze (freezing), then
		// next was started in standby beside it.
		freezing bool
		next     *child
	)
	up := time.NewTimer(o.MinUptime)
	defer up.Stop()
	pings := time.NewTicker(o.PingEvery)
	defer pings.Stop()
	// stoppedOld: a proxy that was told to step down exited with a stop
	// requested (`cutover proxy stop` reached it first).
	stoppedOld := make(chan struct{})
	var stopOnce sync.Once
	var readyBy <-chan time.Time // a restart's time to have its new proxy ready
	failRestart := func(why string) {
		restartFailed(home, why)
		next, freezing = nil, false
		cur.tell(cmdThaw)
	}
	for {
		var frozen, ready <-chan struct{}
		var nextDone <-chan error
		if freezing && next == nil {
			frozen = cur.frozen
		}
		if next != nil {
			ready, nextDone = next.ready, next.done
		}
		if !freezing {
			readyBy = nil
		}
		select {
		case <-hups:
			if freezing {
				o.Logger.Info("a restart of the proxy is already in progress")
				continue
			}
			freezing = true
			readyBy = time.After(o.StandbyTimeout)
			o.Logger.Info("restarting the proxy: a new one starts beside it with the listening sockets", "pid", cur.pid())
			if err := cur.freeze(); err != nil {
				o.Logger.Error("the proxy is not restarted: it cannot be told to freeze", "pid", cur.pid(), "err", err)
				failRestart("the running proxy could not be told to freeze: " + err.Error())
			}
		case <-frozen:
			n, err := held.start(exe, args, true)
			if err != nil {
				o.Logger.Error("the proxy is not restarted: the running one goes on", "pid", cur.pid(), "err", err)
				failRestart(err.Error())
				continue
			}
			next = n
		case <-readyBy:
			o.Logger.Error("the restart did not complete in time: the running one goes on", "pid", cur.pid(), "timeout", o.StandbyTimeout.String())
			if next != nil {
				next.cmd.Process.Kill()
				<-next.done
			}
			failRestart("the new proxy was not ready within " + o.StandbyTimeout.String())
		case <-ready:
			if _, serr := os.Stat(stoppingPath(home)); serr == nil {
				// `cutover proxy stop` came during the restart: the new
				// one goes, and the running one's stop ends this.
				o.Logger.Info("the proxy is being stopped: the new one goes too", "new", next.pid())
				stopChild(next)
				next, freezing = nil, false
				continue
			}
			// The next proxy serves the sockets: the running one lets go
			// of the home and finishes its requests on its own.
			cur.tell(cmdStepDown)
			old := cur
			oldMu.Lock()
			olds[old] = true
			oldMu.Unlock()
			go func() {
				err := <-old.done
				oldMu.Lock()
				delete(olds, old)
				oldMu.Unlock()
				close(old.exited)
				o.Logger.Info("the previous proxy finished its requests", "pid", old.pid(), "exit", err)
				if _, serr := os.Stat(stoppingPath(home)); serr == nil {
					stopOnce.Do(func() { close(stoppedOld) }) // a stop reached it instead of the step-down
				}
			}()
			o.Logger.Info("the proxy was restarted", "pid", next.pid(), "previous", old.pid())
			// It started: a crash from now on is restarted (MinUptime is
			// for a proxy that could not start).
			next.started = time.Time{}
			next.alive.Store(monoNow()) // pinged from now on
			cur, next, freezing = next, nil, false
		case err := <-nextDone:
			o.Logger.Error("the new proxy did not start: the running one goes on", "pid", cur.pid(), "new", next.pid(), "exit", err)
			failRestart(fmt.Sprintf("the new proxy (pid %d) exited before it was ready (%v)", next.pid(), err))
		case err := <-cur.done:
			if next != nil {
				if _, serr := os.Stat(stoppingPath(home)); serr == nil {
					_ = os.Remove(stoppingPath(home))
					o.Logger.Info("the proxy was stopped on purpose during its restart; stopping the new one too", "pid", cur.pid(), "new", next.pid())
					stopChild(next)
					return nil
				}
				// It died while the next one starts: that one takes over
				// (it takes the lock the dead one held).
				o.Logger.Warn("the proxy died during its restart: the new one takes over", "pid", cur.pid(), "exit", err, "new", next.pid())
				next.started = time.Time{}
				next.alive.Store(monoNow()) // pinged from now on
				cur, next, freezing = next, nil, false
				continue
			}
			freezing = false
			if err == nil {
				_ = os.Remove(stoppingPath(home))
				return nil // a clean stop
			}
			if _, serr := os.Stat(stoppingPath(home)); serr == nil {
				_ = os.Remove(stoppingPath(home))
				o.Logger.Info("the proxy was stopped on purpose; not restarting it", "pid", cur.pid(), "exit", err)
				return nil
			}
			uptime := time.Since(cur.started)
			if uptime < o.MinUptime {
				return fmt.Errorf("the cutover proxy exited %s after it started (%v): not restarting it", uptime.Round(time.Millisecond), err)
			}
			now := time.Now()
			recent := restarts[:0]
			for _, t := range restarts {
				if now.Sub(t) < o.Window {
					recent = append(recent, t)
				}
			}
			restarts = recent
			if len(restarts) >= o.MaxRestarts {
				return fmt.Errorf("the cutover proxy died %d times within %s (last: %v): giving up", len(restarts)+1, o.Window, err)
			}
			restarts = append(restarts, now)
			o.Logger.Warn("the proxy died; starting it again", "pid", cur.pid(), "exit", err, "uptime", uptime.Round(time.Millisecond), "restart", len(restarts))
			select {
			case <-time.After(o.Backoff):
			case <-ctx.Done():
				return nil
			case <-sigs:
				return nil
			}
			if cur, err = held.start(exe, args, false); err != nil {
				return err
			}
			if !wrotePID {
				up.Reset(o.MinUptime)
			}
		case <-pings.C:
			// A proxy that deadlocked, or whose event loops no longer run,
			// serves nothing but does not exit: killed, it is started
			// again with the sockets (a crash's path).
			if quiet := cur.quiet(); quiet > o.HangTimeout {
				o.Logger.Error("the proxy has not answered for too long: killing it to start it again", "pid", cur.pid(), "quiet", quiet.Round(time.Millisecond).String())
				cur.alive.Store(monoNow()) // once
				cur.cmd.Process.Kill()
				continue
			}
			cur.tell(cmdPing)
		case <-up.C:
			// supervisor.pid names this process once its own proxy answers
			// (a second Keep, whose proxy waits for the lock of the one
			// serving, must not replace the file of the Keep of that one).
			if !wrotePID {
				if h, err := NewClient(home).Ping(ctx); err == nil && h.PID == cur.pid() {
					wrotePID = true
					_ = os.Remove(stoppingPath(home)) // left by a stop that ended before this start
					if werr := atomicfile.Write(supervisorPath(home), supervisorRecord(), 0o600); werr != nil {
						o.Logger.Warn("writing the supervisor pid file", "err", werr)
					}
				} else {
					up.Reset(200 * time.Millisecond)
				}
			}
		case <-stoppedOld:
			_ = os.Remove(stoppingPath(home))
			o.Logger.Info("the proxy was stopped on purpose as it was restarted; stopping the new one too", "pid", cur.pid())
			if next != nil {
				stopChild(next)
			}
			return stopChild(cur)
		case <-ctx.Done():
			if next != nil {
				stopChild(next)
			}
			return stopChild(cur)
		case <-sigs:
			if next != nil {
				stopChild(next)
			}
			return stopChild(cur)
		}
	}
}

// restartFailed records why a restart failed, for Restart to report.
func restartFailed(home, why string) {
	_ = atomicfile.Write(restartFailedPath(home), []byte(why+"\n"), 0o600)
}

// standbyReadyTimeout is KeepOptions.StandbyTimeout's default: the new
// proxy's first checks take 3s at most; then it is killed and the running
// one thaws.
const standbyReadyTimeout = 30 * time.Second

// stopKill bounds the wait for a proxy after SIGTERM (it bounds its own
// grace, 10s, and its admin's, 2s); then it gets SIGKILL.
const stopKill = 20 * time.Second

// stopChild forwards SIGTERM to the proxy and waits for it, then kills it
// if it is still there after stopKill (a hung proxy must not hold the
// listening sockets of a stopped one).
func stopChild(c *child) error {
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	var err error
	select {
	case err = <-c.done:
	case <-time.After(stopKill):
		c.cmd.Process.Kill()
		err = <-c.done
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && !ee.Exited() {
			return nil // ended by a signal after the SIGTERM: still a stop
		}
		return err
	}
	return nil
}

// markStopping tells a Keep supervising the proxy of home that the coming
// exit is deliberate.
func markStopping(home string) error {
	return atomicfile.Write(stoppingPath(home), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
}

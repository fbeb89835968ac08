package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/cutoverdev/cutover/internal/atomicfile"
)

func stoppingPath(home string) string   { return proxyDir(home) + "/stopping" }
func supervisorPath(home string) string { return proxyDir(home) + "/supervisor.pid" }

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

	var restarts []time.Time
start:
	for {
		cmd := exec.Command(exe, args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		conn, theirs, env, extra, err := held.channel()
		if err != nil {
			return err
		}
		cmd.Env, cmd.ExtraFiles = append(os.Environ(), env...), extra
		started := time.Now()
		err = cmd.Start()
		theirs.Close()
		if err != nil {
			conn.Close()
			return fmt.Errorf("starting the cutover proxy (%s): %w", exe, err)
		}
		received, released := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(received)
			held.receive(conn, released)
		}()
		done := make(chan error, 1)
		go func() {
			err := cmd.Wait()
			held.finish(conn, received)
			done <- err
		}()
		up := time.NewTimer(o.MinUptime)
	wait:
		for {
			select {
			case err = <-done:
				break wait
			case <-hups:
				o.Logger.Info("restarting the proxy: it hands its listening sockets over to a new one", "pid", cmd.Process.Pid)
				if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
					o.Logger.Warn("asking the proxy to hand over", "pid", cmd.Process.Pid, "err", err)
				}
			case <-released:
				// The proxy let go of the home and finishes its requests
				// on its own: start the next one now, with the sockets.
				up.Stop()
				pid := cmd.Process.Pid
				go func() {
					err := <-done
					o.Logger.Info("the previous proxy finished its requests", "pid", pid, "exit", err)
				}()
				continue start
			case <-up.C:
				if !wrotePID {
					wrotePID = true
					_ = os.Remove(stoppingPath(home)) // left by a stop that ended before this start
					if werr := atomicfile.Write(supervisorPath(home), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); werr != nil {
						o.Logger.Warn("writing the supervisor pid file", "err", werr)
					}
				}
			case <-ctx.Done():
				up.Stop()
				return stopChild(cmd, done)
			case <-sigs:
				up.Stop()
				return stopChild(cmd, done)
			}
		}
		up.Stop()
		if err == nil {
			_ = os.Remove(stoppingPath(home))
			return nil // a clean stop
		}
		if _, serr := os.Stat(stoppingPath(home)); serr == nil {
			_ = os.Remove(stoppingPath(home))
			o.Logger.Info("the proxy was stopped on purpose; not restarting it", "pid", cmd.Process.Pid, "exit", err)
			return nil
		}
		uptime := time.Since(started)
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
		o.Logger.Warn("the proxy died; starting it again", "pid", cmd.Process.Pid, "exit", err, "uptime", uptime.Round(time.Millisecond), "restart", len(restarts))
		select {
		case <-time.After(o.Backoff):
		case <-ctx.Done():
			return nil
		case <-sigs:
			return nil
		}
	}
}

// stopChild forwards SIGTERM to the proxy and waits for it (it bounds its
// own grace period).
func stopChild(cmd *exec.Cmd, done <-chan error) error {
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	if err := <-done; err != nil {
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

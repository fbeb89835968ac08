package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/proc"
)

// keptProxy is the proxy of a home run under Keep (the test's keeper
// role); every process it is told about is SIGKILLed at the end of the
// test if still alive, even after a failure.
type keptProxy struct {
	t    *testing.T
	home string
	c    *Client
	pid  int // the first proxy
	pids []int
}

func startKept(t *testing.T, home string) *keptProxy {
	t.Helper()
	k := &keptProxy{t: t, home: home}
	k.c, k.pid = startDaemonAs(t, home, "cutover-test-keeper")
	k.pids = []int{k.pid}
	t.Cleanup(func() {
		for _, pid := range k.pids {
			if pid > 0 && proc.Alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				waitGone(context.Background(), pid, 5*time.Second)
			}
		}
	})
	return k
}

func (k *keptProxy) track(pid int) { k.pids = append(k.pids, pid) }

// supervisor waits for the supervisor to name itself (once its proxy has
// been up for MinUptime) and returns its PID.
func (k *keptProxy) supervisor() int {
	k.t.Helper()
	pid := 0
	for deadline := time.Now().Add(5 * time.Second); pid == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		pid = supervisorOf(k.home)
	}
	if pid <= 0 || pid == k.pid {
		k.t.Fatalf("supervisor pid %d (proxy pid %d)", pid, k.pid)
	}
	k.track(pid)
	return pid
}

// A proxy under Keep comes back by itself after it is SIGKILLed (as a crash
// or the OOM killer would end it) and serves the persisted routes again;
// `Stop` ends both the proxy and its supervisor, and leaves them down.
func TestKeepRestartsAKilledProxyAndStopEndsBoth(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	k := startKept(t, home)
	c, h := k.c, Health{PID: k.pid}
	u := upstream(t, "web")
	addr := freeAddr(t)
	if err := c.PutScope(ctx, "e", State{Listeners: []Listener{oneRouteNamed("e/production", addr, "e/web")}, TargetGroups: []TargetGroup{tgOf("e/web", u)}}); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 1)
	supervisor := k.supervisor()

	killed := time.Now()
	if err := syscall.Kill(h.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var (
		again Health
		err   error
	)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if again, err = c.Ping(ctx); err == nil && again.PID != h.PID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no proxy answered within 15s of the kill (last: %v)", err)
		}
	}
	k.track(again.PID)
	t.Logf("proxy pid %d SIGKILLed; pid %d answered after %s", h.PID, again.PID, time.Since(killed).Round(time.Millisecond))
	if code, body, _ := get(t, addr, "", "/"); code != 200 || body != "web" {
		t.Fatalf("first request through the restarted proxy: %d %q", code, body)
	}
	if log, _ := os.ReadFile(logPath(home)); !strings.Contains(string(log), "the proxy died; starting it again") {
		t.Errorf("the restart is not in the proxy log:\n%s", log)
	}
	h = again

	if err := Stop(ctx, home, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if proc.Alive(h.PID) || !waitGone(ctx, supervisor, 5*time.Second) {
		t.Fatalf("after Stop: proxy alive %v, supervisor alive %v", proc.Alive(h.PID), proc.Alive(supervisor))
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := c.Ping(ctx); err == nil {
		t.Fatal("a proxy answers after Stop: it was restarted")
	}
}

// A second Keep for a home whose proxy already runs gives up at once (its
// proxy cannot start) instead of restarting it in a loop, and leaves the
// first supervisor's pid file alone.
func TestKeepGivesUpWhenTheProxyCannotStart(t *testing.T) {
	home := t.TempDir()
	c, pid := startDaemon(t, home)
	if _, err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(supervisorPath(home), []byte("4242\n"), 0o600)
	start := time.Now()
	err := Keep(context.Background(), home, os.Args[0], []string{"cutover-test-proxyd", home}, KeepOptions{MinUptime: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "not restarting it") {
		t.Fatalf("Keep = %v, want it to give up", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("Keep took %s to give up", took)
	}
	if got, _ := readPIDFile(supervisorPath(home)); got != 4242 {
		t.Errorf("supervisor.pid = %d, want the first supervisor's 4242 untouched", got)
	}
	if !proc.Alive(pid) {
		t.Error("the running proxy was stopped")
	}
}

// Stop between a crash and the restart (no proxy answers, the supervisor
// waits out its backoff) stops the supervisor, so nothing comes back.
func TestStopBetweenCrashAndRestart(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	_, pid := startDaemonAs(t, home, "cutover-test-keeper-slow")
	var supervisor int
	for deadline := time.Now().Add(5 * time.Second); supervisor == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		supervisor, _ = readPIDFile(supervisorPath(home))
	}
	if supervisor <= 0 {
		t.Fatal("no supervisor pid file")
	}
	t.Cleanup(func() {
		if proc.Alive(supervisor) {
			syscall.Kill(supervisor, syscall.SIGKILL)
			waitGone(context.Background(), supervisor, 5*time.Second)
		}
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil || !waitGone(ctx, pid, 5*time.Second) {
		t.Fatalf("kill the proxy: %v", err)
	}
	stopStart := time.Now()
	if err := Stop(ctx, home, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if proc.Alive(supervisor) {
		// Seen once in CI (2026-12-07, 0.68 s into the test), not since in
		// 35 runs, 20 of them beside three CPU burners: what Stop saw.
		pidFile, perr := os.ReadFile(supervisorPath(home))
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", supervisor))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", supervisor))
		t.Fatalf("the supervisor (pid %d) runs after Stop (which took %s): supervisor.pid %q (%v), supervisorOf %d, stat %q, cmdline %q; proxy.log:\n%s",
			supervisor, time.Since(stopStart).Round(time.Millisecond), pidFile, perr, supervisorOf(home), stat, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), tailFrom(logPath(home), 0, 30))
	}
	time.Sleep(3500 * time.Millisecond) // past the supervisor's backoff
	if _, err := NewClient(home).Ping(ctx); err == nil {
		t.Fatal("a proxy came back after Stop")
	}
}

// A connection made while the proxy is dead is not refused: the supervisor
// keeps the listening socket, and the restarted proxy serves what waited in
// its backlog, and only once the restored target had its first check (a
// slow one here), so the request gets the target's answer, not a 503 for
// want of a checked target. A listener taken out of the routes, and every
// listener after Stop, refuses connections at once: the supervisor does not
// keep a port nobody serves.
func TestKeptListeningSocketServesWhatCameWhileTheProxyWasDown(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	k := startKept(t, home)
	c, pid := k.c, k.pid
	var slowHealth atomic.Bool
	slowStarted, releaseSlow := make(chan struct{}), make(chan struct{})
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			if slowHealth.Load() {
				time.Sleep(700 * time.Millisecond)
			}
		case "/slow":
			close(slowStarted)
			<-releaseSlow
		}
		io.WriteString(w, "web")
	}))
	var once sync.Once
	release := func() { once.Do(func() { close(releaseSlow) }) }
	t.Cleanup(u.Close)
	t.Cleanup(release) // before u.Close, which waits for the handler
	tg := tgOf("e/web", u)
	tg.Health.Path = "/healthz"
	tg.Health.Timeout = Duration(2 * time.Second)
	addr, other := freeAddr(t), freeAddr(t)
	state := State{Listeners: []Listener{oneRouteNamed("e/production", addr, "e/web"), oneRouteNamed("e/other", other, "e/web")}, TargetGroups: []TargetGroup{tg}}
	if err := c.PutScope(ctx, "e", state); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 1)
	supervisor := k.supervisor()

	// Take one listener out: its port must refuse at once, though the
	// supervisor held it a moment ago.
	state.Listeners = state.Listeners[:1]
	if err := c.PutScope(ctx, "e", state); err != nil {
		t.Fatal(err)
	}
	refused := func(a string) bool {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			conn, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return true
			}
			conn.Close()
		}
		return false
	}
	if !refused(other) {
		t.Fatalf("%s still accepts connections after its listener was removed", other)
	}

	slowHealth.Store(true)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitGone(ctx, pid, 5*time.Second) {
		t.Fatal("the proxy survived SIGKILL")
	}
	// The proxy is dead now: this connection waits in the kept socket.
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("a connection while the proxy was down: %v (want it kept for the restarted proxy)", err)
	}
	defer conn.Close()
	sent := time.Now()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the request sent while the proxy was down: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "web" {
		t.Fatalf("the request sent while the proxy was down: %d %q, want 200 \"web\"", resp.StatusCode, body)
	}
	t.Logf("answered %s after it was sent to the dead proxy", time.Since(sent).Round(time.Millisecond))
	var h Health
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if h, err = c.Ping(ctx); err == nil && h.PID != pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: pid %d (killed %d), %v", h.PID, pid, err)
		}
	}
	pid = h.PID
	k.track(pid)
	if !refused(other) {
		t.Fatalf("%s, removed before the crash, accepts connections after the restart", other)
	}

	// Stop with a request in flight: while the proxy lets it finish, its
	// port refuses new connections (the supervisor let go of it first).
	inFlight := getLater(&http.Client{Timeout: 10 * time.Second}, "http://"+addr+"/slow")
	<-slowStarted
	stopped := make(chan error, 1)
	go func() { stopped <- Stop(ctx, home, 10*time.Second) }()
	if !refused(addr) {
		t.Fatalf("%s accepts connections while the stopping proxy finishes a request", addr)
	}
	release()
	if got := <-inFlight; got != "200 web" {
		t.Fatalf("the request in flight at the stop: %s", got)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if !waitGone(ctx, supervisor, 5*time.Second) {
		t.Fatal("the supervisor runs after Stop")
	}
}

// `cutover proxy restart` replaces the proxy's process under load without
// failing a request: clients with kept-alive connections and clients with a
// new connection per request, a request in flight at the restart (it ends
// on the old process), and a controller changing weights through the admin
// API all through the hand-over (its calls wait for the next proxy).
func TestRestartReplacesTheProxyWithoutFailingARequest(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	k := startKept(t, home)
	c, first := k.c, k.pid
	slowStarted := make(chan struct{})
	var slowOnce sync.Once
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slowOnce.Do(func() { close(slowStarted) })
			time.Sleep(time.Second)
		}
		io.WriteString(w, "web")
	}))
	t.Cleanup(u.Close)
	addr := freeAddr(t)
	state := State{
		Listeners:    []Listener{{Name: "e/production", Addr: addr, Rules: []Rule{{Forward: []WeightedTarget{{"e/blue", 100}, {"e/green", 0}}}}}},
		TargetGroups: []TargetGroup{tgOf("e/blue", u), tgOf("e/green", u)},
	}
	if err := c.PutScope(ctx, "e", state); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 2)
	supervisor := k.supervisor()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	load := func(keepAlive bool) {
		defer wg.Done()
		tr := &http.Transport{DisableKeepAlives: !keepAlive}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for i := 0; i < 20000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := hc.Get("http://" + addr + "/")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "web" {
					err = fmt.Errorf("%d %q", resp.StatusCode, b)
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("keep-alive %v: %v", keepAlive, err))
				continue
			}
			ok.Add(1)
		}
	}
	for i := range 6 {
		wg.Add(1)
		go load(i%2 == 0)
	}
	var flips, flipErrs atomic.Int64
	wg.Add(1)
	go func() { // a controller changing weights all along
		defer wg.Done()
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			w := 100 * (i % 2)
			if err := c.SetWeights(ctx, WeightChange{Listener: "e/production", Forward: []WeightedTarget{{"e/blue", 100 - w}, {"e/green", w}}}); err != nil {
				flipErrs.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("weight change: %v", err))
				continue
			}
			flips.Add(1)
		}
	}()
	slow := getLater(&http.Client{Timeout: 10 * time.Second}, "http://"+addr+"/slow")
	<-slowStarted
	time.Sleep(200 * time.Millisecond)
	before := ok.Load()
	restarted := time.Now()
	next, err := Restart(ctx, home, 20*time.Second)
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	k.track(next.PID)
	took := time.Since(restarted)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("restart took %s (pid %d -> %d); %d requests (%d before it), %d weight changes", took.Round(time.Millisecond), first, next.PID, ok.Load(), before, flips.Load())
	if next.PID == first {
		t.Fatal("the same proxy answers after the restart")
	}
	if n := failed.Load() + flipErrs.Load(); n > 0 {
		t.Fatalf("%d requests and %d weight changes failed across the restart; first: %v", failed.Load(), flipErrs.Load(), firstErr.Load())
	}
	if got := <-slow; got != "200 web" {
		t.Fatalf("the request in flight at the restart: %s", got)
	}
	if ok.Load() == before {
		t.Fatal("no request was served after the restart")
	}
	if !waitGone(ctx, first, 15*time.Second) {
		t.Fatal("the old proxy still runs")
	}
	if s, gen, err := c.State(ctx); err != nil || len(s.Listeners) != 1 || gen < 2 {
		t.Fatalf("the next proxy's state: %d listeners, generation %d, %v", len(s.Listeners), gen, err)
	}
	if _, err := os.Stat(restartingPath(home)); !os.IsNotExist(err) {
		t.Fatalf("the restart marker is left: %v", err)
	}
	if got := supervisorOf(home); got != supervisor {
		t.Fatalf("supervisor %d after the restart, want %d", got, supervisor)
	}
	if err := Stop(ctx, home, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !waitGone(ctx, supervisor, 5*time.Second) {
		t.Fatal("the supervisor runs after Stop")
	}
}

// A proxy without a supervisor cannot be restarted: Restart says so and
// changes nothing.
func TestRestartWithoutASupervisorChangesNothing(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	c, pid := startDaemon(t, home)
	u := upstream(t, "web")
	addr := freeAddr(t)
	if err := c.PutScope(ctx, "e", State{Listeners: []Listener{oneRouteNamed("e/production", addr, "e/web")}, TargetGroups: []TargetGroup{tgOf("e/web", u)}}); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 1)
	if _, err := Restart(ctx, home, time.Second); err == nil || !strings.Contains(err.Error(), "no supervisor") {
		t.Fatalf("Restart of an unsupervised proxy: %v", err)
	}
	if h, err := c.Ping(ctx); err != nil || h.PID != pid {
		t.Fatalf("after Restart: pid %d (was %d), %v", h.PID, pid, err)
	}
	if code, body, _ := get(t, addr, "", "/"); code != 200 || body != "web" {
		t.Fatalf("after Restart: %d %q", code, body)
	}
	if err := c.PutScope(ctx, "e", State{Listeners: []Listener{oneRouteNamed("e/production", addr, "e/web")}, TargetGroups: []TargetGroup{tgOf("e/web", u)}}); err != nil {
		t.Fatalf("a change after Restart: %v", err)
	}
}

// A restart whose new proxy cannot start (here the TLS listener's
// certificate is gone; as well a new version that fails) leaves the running
// proxy serving and taking changes again, and Restart says so at once.
// Before, the running one had already let go and stopped accepting, and the
// supervisor gave up: nothing served the ports.
func TestFailedRestartLeavesTheRunningProxyServing(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	k := startKept(t, home)
	c := k.c
	u := upstream(t, "web")
	addr, taddr := freeAddr(t), freeAddr(t)
	cert, key, _ := selfSigned(t, t.TempDir(), "a", "127.0.0.1")
	tl := oneRouteNamed("e/tls", taddr, "e/web")
	tl.TLS = &TLS{CertFile: cert, KeyFile: key}
	state := State{Listeners: []Listener{oneRouteNamed("e/production", addr, "e/web"), tl}, TargetGroups: []TargetGroup{tgOf("e/web", u)}}
	if err := c.PutScope(ctx, "e", state); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 1)
	supervisor := k.supervisor()
	os.Remove(cert) // moved by hand: the running proxy has it loaded, a new one cannot load it
	start := time.Now()
	_, err := Restart(ctx, home, 20*time.Second)
	if err == nil || !strings.Contains(err.Error(), "did not start") {
		log, _ := os.ReadFile(logPath(home))
		t.Fatalf("Restart with a new proxy that cannot start: %v; the log:\n%s", err, log)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Restart took %s to say the new proxy failed", d)
	}
	if h, err := c.Ping(ctx); err != nil || h.PID != k.pid {
		t.Fatalf("after the failed restart: pid %d (was %d), %v", h.PID, k.pid, err)
	}
	if code, body, _ := get(t, addr, "", "/"); code != 200 || body != "web" {
		t.Fatalf("after the failed restart: %d %q", code, body)
	}
	if _, err := os.Stat(restartingPath(home)); !os.IsNotExist(err) {
		t.Errorf("the restart marker is left: %v", err)
	}
	state.Listeners = state.Listeners[:1]
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.PutScope(cctx, "e", state); err != nil {
		t.Fatalf("a change after the failed restart: %v", err)
	}
	if !proc.Alive(supervisor) {
		t.Fatal("the supervisor gave up")
	}
	if log, _ := os.ReadFile(logPath(home)); !strings.Contains(string(log), "the new proxy did not start: the running one goes on") {
		t.Errorf("the log does not say the restart failed:\n%s", log)
	}

	// The next restart works, and loses no change acknowledged meanwhile:
	// it waits for the running proxy to freeze again (its answer to the
	// first freeze must not count).
	stop := make(chan struct{})
	acked := make(chan int, 1)
	go func() {
		last := 0
		defer func() { acked <- last }()
		for w := 1; w < 5000; w++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := c.SetWeights(ctx, WeightChange{Listener: "e/production", Forward: []WeightedTarget{{"e/web", w}}}); err == nil {
				last = w
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	next, err := Restart(ctx, home, 20*time.Second)
	close(stop)
	last := <-acked
	if err != nil {
		t.Fatalf("the restart after a failed one: %v", err)
	}
	k.track(next.PID)
	s, _, err := c.State(ctx)
	if err != nil || len(s.Listeners) != 1 || len(s.Listeners[0].Rules) != 1 {
		t.Fatalf("the new proxy's state: %+v %v", s, err)
	}
	if got := s.Listeners[0].Rules[0].Forward[0].Weight; got != last {
		t.Fatalf("the new proxy has weight %d, the last change acknowledged set %d", got, last)
	}
}

// The running proxy serves until the new one is ready: a target whose
// first health check hangs (the new proxy waits up to 3s for first checks
// before it opens its listeners) does not stall new connections meanwhile.
// Before, the running one stopped accepting as the new one started, and
// every new connection waited those 3s.
func TestRestartDoesNotStallOnASlowFirstCheck(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	k := startKept(t, home)
	c := k.c
	u := upstream(t, "web")
	hung := hungTarget(t) // accepts, never answers: its check times out after 5s
	other := TargetGroup{Name: "e/other", Health: fastHealth, DeregistrationDelay: Duration(5 * time.Second), Targets: []Target{{ID: "hung", Addr: hung}}}
	other.Health.Timeout = Duration(5 * time.Second)
	addr := freeAddr(t)
	if err := c.PutScope(ctx, "e", State{Listeners: []Listener{oneRouteNamed("e/production", addr, "e/web")}, TargetGroups: []TargetGroup{tgOf("e/web", u), other}}); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 1)
	k.supervisor()
	stop := make(chan struct{})
	var slowest atomic.Int64
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := time.Now()
				resp, err := hc.Get("http://" + addr + "/")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok.Add(1)
				if d := int64(time.Since(s)); d > slowest.Load() {
					slowest.Store(d)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	next, err := Restart(ctx, home, 20*time.Second)
	took := time.Since(start)
	if err == nil {
		k.track(next.PID)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restart took %s; %d requests, the slowest %s", took.Round(time.Millisecond), ok.Load(), time.Duration(slowest.Load()).Round(time.Millisecond))
	if failed.Load() > 0 {
		t.Errorf("%d requests failed across the restart", failed.Load())
	}
	if d := time.Duration(slowest.Load()); d > time.Second {
		t.Errorf("a request waited %s across the restart (the new proxy's first checks took %s)", d, took)
	}
}

// hungTarget is a target that accepts connections and never answers.
func hungTarget(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveHolding(t, ln, func(net.Conn) bool { return true })
}

// `cutover proxy stop` while a restart is in progress stops everything:
// the running proxy, the new one and the supervisor, and the ports refuse.
// Before, Stop reported the proxy stopped while the new one served on, and
// left the stop's marker, so the next crash of that one was not recovered.
func TestStopDuringARestartStopsEverything(t *testing.T) {
	for i := range 3 {
		home := t.TempDir()
		ctx := context.Background()
		k := startKept(t, home)
		u := upstream(t, "web")
		addr := freeAddr(t)
		if err := k.c.PutScope(ctx, "e", State{Listeners: []Listener{oneRouteNamed("e/production", addr, "e/web")}, TargetGroups: []TargetGroup{tgOf("e/web", u)}}); err != nil {
			t.Fatal(err)
		}
		waitTargets(t, k.c, 1)
		supervisor := k.supervisor()
		var wg sync.WaitGroup
		var stopErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			if h, err := Restart(ctx, home, 2*time.Second); err == nil {
				k.track(h.PID)
			}
		}()
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
			stopErr = Stop(ctx, home, 5*time.Second)
		}()
		wg.Wait()
		if stopErr != nil {
			t.Fatalf("round %d: Stop: %v", i, stopErr)
		}
		if !waitGone(ctx, supervisor, 5*time.Second) {
			log, _ := os.ReadFile(logPath(home))
			t.Fatalf("round %d: the supervisor runs after Stop; the log:\n%s", i, log)
		}
		if h, err := k.c.Ping(ctx); err == nil {
			k.track(h.PID)
			t.Fatalf("round %d: proxy pid %d answers after Stop", i, h.PID)
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("round %d: %s accepts connections after Stop", i, addr)
		}
		if _, err := os.Stat(stoppingPath(home)); !os.IsNotExist(err) {
			t.Fatalf("round %d: the stop's marker is left: %v", i, err)
		}
	}
}

// A stop that finds no proxy answering (its socket gone, as while a
// restart's proxies swap it) stops the supervisor, and with it the proxy,
// and leaves no stop marker behind: the supervisor's signal path did not
// read it, and a next Keep would have taken its proxy's first crash for a
// stop (TestStopDuringARestartStopsEverything found it, now and then).
func TestStopOfAnIdleSupervisorLeavesNoMarker(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	k := startKept(t, home)
	supervisor := k.supervisor()
	if err := os.Rename(socketPath(home), socketPath(home)+".away"); err != nil {
		t.Fatal(err)
	}
	if err := Stop(ctx, home, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !waitGone(ctx, supervisor, 5*time.Second) || !waitGone(ctx, k.pid, 5*time.Second) {
		t.Fatal("the supervisor or its proxy runs after Stop")
	}
	if _, err := os.Stat(stoppingPath(home)); !os.IsNotExist(err) {
		t.Fatalf("the stop's marker is left: %v", err)
	}
}

// Restarts under POSTs on kept-alive connections fail none of them (Go's
// client sends a POST again only if told it may): the proxy handing over
// does not close an idle kept-alive connection while its client may be
// sending the next request; it answers that request with Connection: close
// (both paths: small bodies on the loops, 16 KiB ones on the server).
// Before, 1-9 of ~50,000 small and 3-11 large POSTs failed per 5 restarts.
func TestRestartsFailNoPOSTOnAKeptAliveConnection(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	k := startKept(t, home)
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	}))
	t.Cleanup(u.Close)
	addr := freeAddr(t)
	if err := k.c.PutScope(ctx, "e", State{Listeners: []Listener{oneRouteNamed("e/production", addr, "e/web")}, TargetGroups: []TargetGroup{tgOf("e/web", u)}}); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, k.c, 1)
	k.supervisor()
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := range 8 {
		size := 5
		if i%4 == 3 {
			size = 16 << 10 // over the loops' limit: the server path streams it
		}
		body := strings.Repeat("x", size)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for range 50000 {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := hc.Post("http://"+addr+"/", "text/plain", strings.NewReader(body))
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || string(b) != fmt.Sprint(size) {
						err = fmt.Errorf("%d %q", resp.StatusCode, b)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	pid := k.pid
	for range 3 {
		h, err := Restart(ctx, home, 10*time.Second)
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatal(err)
		}
		k.track(h.PID)
		if !waitGone(ctx, pid, 15*time.Second) {
			t.Errorf("the previous proxy %d still runs", pid)
		}
		pid = h.PID
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("3 restarts: %d POSTs answered, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Fatalf("%d POSTs failed across the restarts; first: %v", failed.Load(), firstErr.Load())
	}
}

// tunnel is an upgraded connection through the proxy to echoUpgrade.
type tunnel struct {
	net.Conn
	br *bufio.Reader
}

func dialTunnel(t *testing.T, addr string) *tunnel {
	t.Helper()
	conn, br := openTunnel(t, addr)
	return &tunnel{conn, br}
}

// echo sends a line and returns what comes back.
func (tu *tunnel) echo(line string) (string, error) {
	if _, err := io.WriteString(tu, line+"\n"); err != nil {
		return "", err
	}
	return tu.br.ReadString('\n')
}

// A restart does not cut upgraded connections (WebSockets), nor an
// HTTP/1.0 answer ended by the close (the other connection the server hands
// over): the proxy that steps down carries them on until they end, then
// exits; one still open after the longest deregistration delay is closed
// then; a stop ends a proxy that stepped down and still carries one.
// Before, they were cut with the old proxy, a second after the restart (the
// HTTP/1.0 client read the cut answer as whole: a helper's review).
func TestRestartKeepsUpgradedConnections(t *testing.T) {
	home := t.TempDir()
	ctx := context.Background()
	k := startKept(t, home)
	c, first := k.c, k.pid
	u := echoUpgrade(t)
	stream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 15 { // a line every 200ms, no length
			fmt.Fprintf(w, "line %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(200 * time.Millisecond)
		}
	}))
	t.Cleanup(stream.Close)
	addr := freeAddr(t)
	tg, sg := tgOf("e/ws", u), tgOf("e/stream", stream)
	const bound = 6 * time.Second
	tg.DeregistrationDelay = Duration(bound)
	state := State{
		Listeners: []Listener{{Name: "e/production", Addr: addr, Rules: []Rule{
			{PathPrefix: "/stream", Forward: []WeightedTarget{{"e/stream", 1}}}, {Forward: []WeightedTarget{{"e/ws", 1}}}}}},
		TargetGroups: []TargetGroup{tg, sg},
	}
	if err := c.PutScope(ctx, "e", state); err != nil {
		t.Fatal(err)
	}
	waitTargets(t, c, 2)
	supervisor := k.supervisor()
	mustEcho := func(tu *tunnel, what string) {
		t.Helper()
		if got, err := tu.echo(what); err != nil || got != "echo: "+what+"\n" {
			t.Fatalf("%s: got %q %v", what, got, err)
		}
	}
	restart := func() int {
		t.Helper()
		next, err := Restart(ctx, home, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		k.track(next.PID)
		return next.PID
	}

	// An HTTP/1.0 answer ended by the close, alone on the proxy that
	// steps down: carried to its end.
	sc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(sc, "GET /stream HTTP/1.0\r\nHost: app.example\r\n\r\n")
	sbr := bufio.NewReader(sc)
	if resp, err := http.ReadResponse(sbr, nil); err != nil || resp.ContentLength != -1 {
		t.Fatalf("the HTTP/1.0 stream: %v %v", resp, err)
	}
	streamAt := time.Now()
	zeroth := first
	first = restart()
	rest, err := io.ReadAll(sbr)
	if n := strings.Count(string(rest), "\n"); n != 15 || err != nil {
		t.Fatalf("the HTTP/1.0 answer ended by the close, across the restart: %d lines of 15 (%v), ended %s after it began",
			n, err, time.Since(streamAt).Round(time.Millisecond))
	}
	if !waitGone(ctx, zeroth, 2*time.Second) {
		t.Fatal("the proxy that stepped down still runs after its last answer ended")
	}

	a, b := dialTunnel(t, addr), dialTunnel(t, addr)
	mustEcho(a, "a1")
	mustEcho(b, "b1")
	second := restart()
	time.Sleep(handOverDrain + time.Second)
	mustEcho(a, "a2 after the restart")
	mustEcho(b, "b2 after the restart")
	mustEcho(dialTunnel(t, addr), "a new one, to the next proxy")
	a.Close()
	time.Sleep(300 * time.Millisecond)
	if !proc.Alive(first) {
		t.Fatal("the proxy that stepped down exited with an upgraded connection still open")
	}
	b.Close()
	if !waitGone(ctx, first, 2*time.Second) {
		t.Fatal("the proxy that stepped down still runs after its last upgraded connection ended")
	}

	// One that stays open is closed after the longest deregistration delay.
	long := dialTunnel(t, addr)
	mustEcho(long, "c1")
	restarted := time.Now()
	third := restart()
	time.Sleep(handOverDrain + time.Second)
	mustEcho(long, "c2 after the restart")
	if !waitGone(ctx, second, bound+3*time.Second) {
		t.Fatalf("the proxy that stepped down still runs %s after the restart", time.Since(restarted).Round(time.Millisecond))
	}
	if took := time.Since(restarted); took < bound-500*time.Millisecond {
		t.Fatalf("the proxy that stepped down exited %s after the restart, before the deregistration delay %s", took.Round(time.Millisecond), bound)
	}
	if got, err := long.echo("c3"); err == nil {
		t.Fatalf("the upgraded connection still carries %q after its proxy exited", got)
	}

	// A stop ends a proxy that stepped down, with what it carries (not
	// the deregistration delay after the restart).
	last := dialTunnel(t, addr)
	mustEcho(last, "d1")
	restarted = time.Now()
	restart()
	if err := Stop(ctx, home, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{supervisor, third} {
		if !waitGone(ctx, pid, 5*time.Second) {
			t.Fatalf("pid %d runs after Stop", pid)
		}
	}
	if took := time.Since(restarted); took > bound-time.Second {
		t.Fatalf("the proxy that stepped down was gone %s after the restart: not ended by the stop", took.Round(time.Millisecond))
	}
}

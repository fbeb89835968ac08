package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/loadgen"
)

func oneRoute(addr string, forward ...WeightedTarget) Listener {
	return Listener{Name: "test/production", Addr: addr, Rules: []Rule{{Forward: forward}}}
}

func TestWeightFlipUnderLoadHasZeroFailures(t *testing.T) {
	blue, green := upstream(t, "blue"), upstream(t, "green")
	p := newTestProxy(t, Options{})
	addr := freeAddr(t)
	state := func(wBlue, wGreen int) State {
		return State{
			Listeners:    []Listener{oneRoute(addr, WeightedTarget{"test/blue", wBlue}, WeightedTarget{"test/green", wGreen})},
			TargetGroups: []TargetGroup{tgOf("test/blue", blue), tgOf("test/green", green)},
		}
	}
	ctx := context.Background()
	if err := p.Apply(ctx, state(100, 0)); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "test/blue", "healthy", 1)
	waitState(t, p, "test/green", "healthy", 1)

	done := make(chan loadgen.Result)
	go func() {
		res, err := loadgen.Run(ctx, loadgen.Options{URL: "http://" + addr + "/", Concurrency: 8, Duration: 3 * time.Second, CountHeader: "X-Upstream"})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	for _, w := range [][2]int{{0, 100}, {100, 0}, {0, 100}, {100, 0}} {
		time.Sleep(500 * time.Millisecond)
		if err := p.Apply(ctx, state(w[0], w[1])); err != nil {
			t.Fatal(err)
		}
	}
	res := <-done
	t.Logf("load during 4 weight flips: %s; by upstream %v", res, res.Header)
	if res.Failed != 0 || res.Requests == 0 {
		t.Fatalf("want zero failed requests, got %s errors %v", res, res.Errors)
	}
	if res.Header["blue"] == 0 || res.Header["green"] == 0 {
		t.Fatalf("responses did not switch between blue and green: %v", res.Header)
	}
	// After the last flip, only blue answers.
	for range 20 {
		if _, body, _ := get(t, addr, "", "/"); body != "blue" {
			t.Fatalf("after weights 100/0 got %q", body)
		}
	}
}

func TestHostAndPathPrecedence(t *testing.T) {
	ups := map[string]*httptest.Server{}
	var groups []TargetGroup
	for _, n := range []string{"catchall", "api", "apiv2", "host", "hostapi"} {
		ups[n] = upstream(t, n)
		groups = append(groups, tgOf("e/"+n, ups[n]))
	}
	to := func(n string) []WeightedTarget { return []WeightedTarget{{"e/" + n, 1}} }
	addr := freeAddr(t)
	s := State{TargetGroups: groups, Listeners: []Listener{{Name: "e/l", Addr: addr, Rules: []Rule{
		{Forward: to("catchall")},
		{PathPrefix: "/api", Forward: to("api")},
		{PathPrefix: "/api/v2/", Forward: to("apiv2")},
		{Host: "Shop.Example", Forward: to("host")},
		{Host: "shop.example", PathPrefix: "/api", Forward: to("hostapi")},
	}}}}
	p := newTestProxy(t, Options{})
	if err := p.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"catchall", "api", "apiv2", "host", "hostapi"} {
		waitState(t, p, "e/"+n, "healthy", 1)
	}
	for _, c := range []struct{ host, path, want string }{
		{"other", "/", "catchall"},
		{"other", "/apix", "catchall"},
		{"other", "/api", "api"},
		{"other", "/api/v1/x", "api"},
		{"other", "/api/v2/x", "apiv2"},
		{"shop.example", "/", "host"},
		{"SHOP.example:8080", "/api/x", "hostapi"},
		{"shop.example", "/api/v2/x", "hostapi"},
	} {
		if _, body, _ := get(t, addr, c.host, c.path); body != c.want {
			t.Errorf("host %s path %s: got %q, want %q", c.host, c.path, body, c.want)
		}
	}
}

func TestNoHealthyTargetIs503WithReason(t *testing.T) {
	dead := freeAddr(t) // nothing listens
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	err := p.Apply(context.Background(), State{
		Listeners: []Listener{oneRoute(addr, WeightedTarget{"production/backend", 1})},
		TargetGroups: []TargetGroup{{Name: "production/backend", Health: fastHealth, Targets: []Target{
			{ID: "a", Addr: dead}, {ID: "b", Addr: dead},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "production/backend", "unhealthy", 2)
	code, body, _ := get(t, addr, "", "/")
	if code != http.StatusServiceUnavailable || body != "cutover: no healthy target for production/backend (0 of 2 healthy)\n" {
		t.Fatalf("got %d %q", code, body)
	}
	for _, ts := range p.Targets() {
		if !strings.Contains(ts.Reason, "connection refused") {
			t.Errorf("target %s reason %q, want connection refused", ts.ID, ts.Reason)
		}
	}
	if s, _ := p.Stats().Group("production/backend"); s.NoTarget != 1 || s.Codes["5xx"] != 1 {
		t.Errorf("stats: no_target %d, 5xx %d; want 1 and 1", s.NoTarget, s.Codes["5xx"])
	}
}

func TestUnhealthyGroupGetsNoShare(t *testing.T) {
	good := upstream(t, "good")
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	err := p.Apply(context.Background(), State{
		Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/good", 10}, WeightedTarget{"e/bad", 90})},
		TargetGroups: []TargetGroup{tgOf("e/good", good),
			{Name: "e/bad", Health: fastHealth, Targets: []Target{{ID: "x", Addr: freeAddr(t)}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/good", "healthy", 1)
	for range 30 {
		if code, body, _ := get(t, addr, "", "/"); code != 200 || body != "good" {
			t.Fatalf("got %d %q, want all traffic on the healthy group", code, body)
		}
	}
}

func TestListenerPortTakenChangesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	u := upstream(t, "u")
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	good := State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/u", 1})}, TargetGroups: []TargetGroup{tgOf("e/u", u)}}
	if err := p.Apply(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.Listeners = append([]Listener{}, good.Listeners...)
	bad.Listeners = append(bad.Listeners, Listener{Name: "e/other", Addr: taken.Addr().String(), Rules: []Rule{{Forward: []WeightedTarget{{"e/u", 1}}}}})
	err = p.Apply(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("want an error naming %s in use, got %v", taken.Addr(), err)
	}
	if got := p.State(); len(got.Listeners) != 1 {
		t.Fatalf("state changed after a failed apply: %+v", got)
	}
	waitState(t, p, "e/u", "healthy", 1)
	if _, body, _ := get(t, addr, "", "/"); body != "u" {
		t.Fatalf("old routes not served after a failed apply: %q", body)
	}
}

func TestDrainingFinishesInFlightRequest(t *testing.T) {
	var slowStarted atomic.Bool
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slowStarted.Store(true)
			time.Sleep(time.Second)
		}
		io.WriteString(w, "old")
	}))
	defer slow.Close()
	next := upstream(t, "new")
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	ctx := context.Background()
	oldState := State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/old", 1})}, TargetGroups: []TargetGroup{tgOf("e/old", slow)}}
	if err := p.Apply(ctx, oldState); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/old", "healthy", 1)

	type result struct {
		code int
		body string
	}
	inflight := make(chan result)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			inflight <- result{0, err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- result{resp.StatusCode, string(b)}
	}()
	for !slowStarted.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	// Replace the old group by the new one while /slow is in flight.
	if err := p.Apply(ctx, State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/new", 1})}, TargetGroups: []TargetGroup{tgOf("e/new", next)}}); err != nil {
		t.Fatal(err)
	}
	ts := p.Targets()
	if len(ts) != 2 || ts[1].Group != "e/old" || ts[1].State != "draining" || ts[1].InFlight != 1 {
		t.Fatalf("want the old target draining with 1 in flight, have %+v", ts)
	}
	waitState(t, p, "e/new", "healthy", 1)
	if _, body, _ := get(t, addr, "", "/"); body != "new" {
		t.Fatalf("a new request went to %q, want the new group", body)
	}
	if r := <-inflight; r.code != 200 || r.body != "old" {
		t.Fatalf("the in-flight request to the draining target got %d %q", r.code, r.body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(p.Targets()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the drained target was not removed: %+v", p.Targets())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRetryOnConnectFailure(t *testing.T) {
	u := upstream(t, "alive")
	dead := httptest.NewServer(http.NotFoundHandler())
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	g := TargetGroup{Name: "e/g", Health: HealthCheck{Path: "/", Interval: Duration(time.Hour), Timeout: Duration(time.Second), HealthyThreshold: 1, UnhealthyThreshold: 1, SuccessCodes: "200-499"},
		Targets: []Target{{ID: "dead", Addr: hostOf(dead)}, {ID: "alive", Addr: hostOf(u)}}}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/g", 1})}, TargetGroups: []TargetGroup{g}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/g", "healthy", 2)
	dead.Close() // still "healthy" for an hour: only the retry saves requests sent to it
	for range 10 {
		if code, body, _ := get(t, addr, "", "/"); code != 200 || body != "alive" {
			t.Fatalf("got %d %q, want the retry to reach the live target", code, body)
		}
		resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 {
			t.Fatalf("POST with a body: %d %s", resp.StatusCode, b)
		}
		resp.Body.Close()
	}
}

func TestForwardedHeaders(t *testing.T) {
	seen := make(chan http.Header, 1)
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/x" {
			return // a health check: the test reads only its own request
		}
		h := r.Header.Clone()
		h.Set("X-Test-Host", r.Host)
		seen <- h
	}))
	defer u.Close()
	_, addr := proxyTo(t, u)
	req, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
	req.Host = "app.example:8080"
	req.Header.Set("X-Forwarded-For", "10.1.2.3")
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	var h http.Header
	select {
	case h = <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the target")
	}
	if got := h.Get("X-Forwarded-For"); got != "10.1.2.3, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto %q", got)
	}
	if got := h.Get("X-Forwarded-Host"); got != "app.example:8080" {
		t.Errorf("X-Forwarded-Host %q", got)
	}
	if host := h.Get("X-Test-Host"); host != "app.example:8080" {
		t.Errorf("upstream saw Host %q, want the client's", host)
	}
}

func TestStreamingResponseArrivesIncrementally(t *testing.T) {
	release := make(chan struct{})
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			return
		}
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	}))
	defer u.Close()
	defer close(release)
	_, addr := proxyTo(t, u)
	resp, err := http.Get("http://" + addr + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first chunk: %q %v", line, err)
	}
	// Reaching here means the first chunk came before the handler finished.
}

// echoUpgrade is a target that switches to a line echo protocol on
// "Upgrade: echo" and echoes every line until the client closes.
func echoUpgrade(t *testing.T) *httptest.Server {
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			return // health checks
		}
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo: " + line)
			brw.Flush()
		}
	}))
	t.Cleanup(u.Close)
	return u
}

// openTunnel upgrades a connection through the proxy at addr to
// echoUpgrade's protocol; the connection has 10s to live.
func openTunnel(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return conn, br
}

// upgradeEcho upgrades a connection through the proxy at addr, waits
// pause, and checks one line's echo.
func upgradeEcho(t *testing.T, addr string, pause time.Duration) {
	t.Helper()
	conn, br := openTunnel(t, addr)
	defer conn.Close()
	time.Sleep(pause)
	io.WriteString(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: hello\n" {
		t.Fatalf("after upgrade (and %s) got %q %v", pause, line, err)
	}
}

func TestUpgradeRoundTrip(t *testing.T) {
	u := echoUpgrade(t)
	_, addr := proxyTo(t, u)
	upgradeEcho(t, addr, 0)
}

// TestUpgradeTunnelOutlivesTheIdleTimeout: the answer's write deadline
// (the listener's idle_timeout) is the head's, not the tunnel's: a
// WebSocket quiet for longer still carries its messages.
func TestUpgradeTunnelOutlivesTheIdleTimeout(t *testing.T) {
	u := echoUpgrade(t)
	addr := freeAddr(t)
	p := newTestProxy(t, Options{})
	l := oneRoute(addr, WeightedTarget{"e/u", 1})
	l.Limits.IdleTimeout = Duration(300 * time.Millisecond)
	if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{tgOf("e/u", u)}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, p, "e/u", "healthy", 1)
	upgradeEcho(t, addr, time.Second)
}

// TestUpgradeTunnelProbesTheClient: a tunnel's client connection carries
// TCP keep-alive probes, so a client host that vanished without a word
// (no FIN, no RST) frees its tunnel and the target's in-flight count,
// which a drain waits for, instead of holding them until the target writes.
func TestUpgradeTunnelProbesTheClient(t *testing.T) {
	u := echoUpgrade(t)
	_, addr := proxyTo(t, u)
	conn, _ := openTunnel(t, addr)
	// The proxy's end of the client's connection: its far end is ours.
	var found bool
	for range 50 {
		for _, f := range tcpSocketsTo(t, conn.LocalAddr().String()) {
			// sl local rem st tx:rx tr:when ...
			if f[3] == "01" {
				found = true
				if !strings.HasPrefix(f[5], "02:") {
					t.Fatalf("the tunnel's client connection has no keep-alive timer: %v", f)
				}
			}
		}
		if found {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the proxy's end of the tunnel not found in /proc/net/tcp")
}

// An Apply that fails on its second listener (a port in use) leaves
// nothing of the first open: before, the loops' copy of its socket stayed
// registered and answered 404, and the port could not be listened on again.
func TestFailedApplyClosesTheListenersItOpened(t *testing.T) {
	p := newTestProxy(t, Options{})
	u := upstream(t, "web")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := freeAddr(t)
	tgs := []TargetGroup{tgOf("e/web", u)}
	err = p.Apply(context.Background(), State{Listeners: []Listener{oneRouteNamed("e/a", free, "e/web"), oneRouteNamed("e/b", busy.Addr().String(), "e/web")}, TargetGroups: tgs})
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("Apply with a port in use: %v", err)
	}
	if c, err := net.DialTimeout("tcp", free, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s accepts connections after the failed Apply", free)
	}
	if err := p.Apply(context.Background(), State{Listeners: []Listener{oneRouteNamed("e/a", free, "e/web")}, TargetGroups: tgs}); err != nil {
		t.Fatalf("listening on %s again: %v", free, err)
	}
}

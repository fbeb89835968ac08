package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// TargetState is where a target is in its life at the proxy.
type TargetState int32

// A target starts initial and takes traffic only once healthy; a removed
// target is draining until its in-flight requests end or its group's
// deregistration delay passes.
const (
	StateInitial TargetState = iota
	StateHealthy
	StateUnhealthy
	StateDraining
)

func (s TargetState) String() string {
	switch s {
	case StateInitial:
		return "initial"
	case StateHealthy:
		return "healthy"
	case StateUnhealthy:
		return "unhealthy"
	case StateDraining:
		return "draining"
	}
	return "unknown"
}

// TargetStatus is what Targets reports about one target.
type TargetStatus struct {
	Group    string `json:"group"`
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	State    string `json:"state"` // initial, healthy, unhealthy or draining
	Reason   string `json:"reason,omitempty"`
	InFlight int    `json:"in_flight"`
}

// target is one live backend. The request path reads only state and
// inFlight, both atomics; everything else changes under mu.
type target struct {
	id, addr string
	group    *group
	log      *slog.Logger

	state    atomic.Int32 // TargetState; draining overrides health
	inFlight atomic.Int64

	mu         sync.Mutex
	health     TargetState // last health verdict: initial, healthy or unhealthy
	draining   bool
	drainGen   int // bumped on every drain and revival, so a stale drain does not drop a revived target
	reason     string
	successes  int
	failures   int
	stopChecks context.CancelFunc
	checksDone chan struct{}
	checked    chan struct{} // closed after the first check
	warm       bool          // restored after a restart: the first success makes it healthy
	tunnels    map[*tunnelPair]struct{}
	gone       bool // its drain ended: no tunnel may join it any more
}

// addTunnel records tn, joined to t, so that the end of t's drain cuts it;
// false if that end came already (tn is then not to be joined).
func (t *target) addTunnel(tn *tunnelPair) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone {
		return false
	}
	if t.tunnels == nil {
		t.tunnels = map[*tunnelPair]struct{}{}
	}
	t.tunnels[tn] = struct{}{}
	return true
}

func (t *target) removeTunnel(tn *tunnelPair) {
	t.mu.Lock()
	delete(t.tunnels, tn)
	t.mu.Unlock()
}

// endTunnels returns the tunnels still joined to t once its drain is over
// (its deregistration delay passed), for the caller to cut: a client must
// not stay on a release taken out of the routes, unchecked and uncounted.
// No tunnel joins t after it.
func (t *target) endTunnels() []*tunnelPair {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gone = true
	tns := make([]*tunnelPair, 0, len(t.tunnels))
	for tn := range t.tunnels {
		tns = append(tns, tn)
	}
	t.tunnels = nil
	return tns
}

func newTarget(g *group, t Target, log *slog.Logger) *target {
	return &target{id: t.ID, addr: t.Addr, group: g, log: log, health: StateInitial, reason: "waiting for the first health check", checked: make(chan struct{})}
}

// start begins the health checks; they run until stop.
func (t *target) start() {
	ctx, cancel := context.WithCancel(context.Background())
	t.stopChecks = cancel
	t.checksDone = make(chan struct{})
	go t.runHealthChecks(ctx)
}

func (t *target) routable() bool { return TargetState(t.state.Load()) == StateHealthy }

// observe records one health check result ("" is a success) and moves the
// target between health states when a threshold is reached.
func (t *target) observe(failure string, c *healthConfig) {
	t.mu.Lock()
	defer t.mu.Unlock()
	from := t.health
	first := t.successes == 0 && t.failures == 0 && t.health == StateInitial
	if first {
		defer close(t.checked)
	}
	if failure == "" {
		t.successes++
		t.failures = 0
		if t.health != StateHealthy && (t.successes >= c.healthy || first && t.warm) {
			t.health = StateHealthy
			t.reason = ""
		}
	} else {
		t.failures++
		t.successes = 0
		t.reason = failure
		if t.health != StateUnhealthy && t.failures >= c.unhealthy {
			t.health = StateUnhealthy
		}
	}
	if !t.draining {
		t.state.Store(int32(t.health))
	}
	if from != t.health {
		t.log.Info("target health changed", "group", t.group.name, "target", t.id, "addr", t.addr,
			"from", from.String(), "to", t.health.String(), "reason", t.reason)
	}
}

// drain stops new requests to t and returns the drain generation that
// may drop it later.
func (t *target) drain() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.draining {
		t.draining = true
		t.drainGen++
		t.state.Store(int32(StateDraining))
	}
	return t.drainGen
}

// revive puts a draining target that was registered again back to work.
func (t *target) revive() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		t.draining = false
		t.drainGen++
		t.state.Store(int32(t.health))
	}
}

// stillDraining reports whether t is still draining in generation gen.
func (t *target) stillDraining(gen int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.draining && t.drainGen == gen
}

func (t *target) status() TargetStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := TargetStatus{Group: t.group.name, ID: t.id, Addr: t.addr, State: TargetState(t.state.Load()).String(), InFlight: int(t.inFlight.Load())}
	if TargetState(t.state.Load()) != StateHealthy {
		s.Reason = t.reason
	}
	if t.draining {
		s.Reason = "removed; finishing in-flight requests"
	}
	return s
}

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// couldNotConnect reports whether err is a failure to connect to a target
// (a dialError) that is the target's, not the proxy's shortage
// (outOfResources): nothing of the request was sent.
func couldNotConnect(err error) bool {
	var de *dialError
	return errors.As(err, &de) && !outOfResources(err)
}

// outOfResources reports whether err is this machine refusing the proxy a
// socket: out of descriptors (the process's or the system's), buffers,
// memory, local ports (EADDRNOTAVAIL from connect) or epoll watches
// (ENOSPC from epoll_ctl: the user's fs.epoll.max_user_watches, which a
// loop's dial and Go's poller both register a socket against). It says
// nothing about the target, so it counts against none: no failed health
// check, no 5xx in the group's figures (which alarms and rollbacks read).
func outOfResources(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EADDRNOTAVAIL, syscall.ENOSPC} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// due reports whether every has passed since *last (Unix nanoseconds), and
// then makes now the last time, for one caller: a warning that a flood of
// clients or requests would repeat is logged at most once per every.
func due(last *atomic.Int64, every time.Duration) bool {
	now, l := time.Now().UnixNano(), last.Load()
	return now-l >= int64(every) && last.CompareAndSwap(l, now)
}

// lastResourceWarning is when warnOutOfResources last logged (Unix ns).
var lastResourceWarning atomic.Int64

// warnOutOfResources logs a shortage of resources at most once a second
// for the process: under an attack that holds every descriptor it would
// otherwise log for every request and check.
func warnOutOfResources(log *slog.Logger, what string, err error) {
	if !due(&lastResourceWarning, time.Second) {
		return
	}
	log.Warn(what+": the proxy is out of resources (raise its descriptor limit: LimitNOFILE in the systemd unit, ulimit -n)", "err", err)
}

// unavailableMessage is the body of the 503 answered while the proxy
// cannot open a connection to a target for want of resources.
const unavailableMessage = "cutover: the load balancer is out of connections; try again\n"

// unavailableAnswer is the whole 503 written where no server can answer.
var unavailableAnswer = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
	strconv.Itoa(len(unavailableMessage)) + "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + unavailableMessage)

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

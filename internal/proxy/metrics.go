package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// durationBuckets are fine between 1ms and 10s (and below 1ms, where
// loopback answers land) so that p95/p99 estimated from them are useful
// for judging a canary.
var durationBuckets = [...]float64{
	0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
	0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10,
}

// classLabels are the values of the code label, indexed by status/100 - 1.
var classLabels = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// metrics are the proxy's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	noTarget *prometheus.CounterVec
	// connectFailed counts requests rerouted after a connect failure, by
	// the group that failed (route.reroute).
	connectFailed *prometheus.CounterVec
	// connsRefused and reqsRefused: what a listener refused its clients
	// (clientConns), read at scrape time.
	connsRefused *prometheus.Desc
	reqsRefused  *prometheus.Desc
	// tunnelsCut counts the tunnels the proxy cut, by reason: idle (no
	// data for tunnel_idle_timeout) or drain (their target's
	// deregistration delay ended).
	tunnelsCut *prometheus.CounterVec
	takenOver  *prometheus.Desc
	targets    *prometheus.Desc
	loop       *prometheus.Desc
	h2         *prometheus.Desc
	p          *Proxy
}

func newMetrics(p *Proxy) *metrics {
	m := &metrics{
		p: p,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_proxy_requests_total",
			Help: "Requests answered, by listener, target group and status class (2xx..5xx).",
		}, []string{"listener", "target_group", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cutover_proxy_request_duration_seconds",
			Help:    "Time from receiving a request to the end of the response from its target.",
			Buckets: durationBuckets[:],
		}, []string{"target_group"}),
		noTarget: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_proxy_no_healthy_target_total",
			Help: "Requests answered 503 because no target of the rule was healthy, counted against the rule's highest-weight group.",
		}, []string{"listener", "target_group"}),
		connectFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_proxy_connect_failures_total",
			Help: "Requests the proxy could not connect to a target of the group for (refused, unreachable, timed out) and sent to another target, whose answer counts in requests_total there. A connect failure with no other target to try is a 502 of the group in requests_total.",
		}, []string{"listener", "target_group"}),
		connsRefused: prometheus.NewDesc("cutover_proxy_client_connections_refused_total",
			"Connections closed as they were accepted because their client (an IPv4 address, an IPv6 /64) held the listener's max_client_conns already.",
			[]string{"listener"}, nil),
		reqsRefused: prometheus.NewDesc("cutover_proxy_requests_refused_total",
			"Requests the proxy answered itself because of what the client sent or did, by listener and status: malformed or smuggling framing (400), a head or body too slow (408), a body over max_body_bytes (413), a request line or head over max_header_bytes (414, 431), CONNECT (501), HTTP/2 requests over the in-flight budget (503), an HTTP version not served (505). They count against no target group. A connection that carried no request (a failed TLS handshake, a preconnect) is none.",
			[]string{"listener", "code"}, nil),
		targets: prometheus.NewDesc("cutover_proxy_targets",
			"Targets by target group and state (initial, healthy, unhealthy, draining).",
			[]string{"target_group", "state"}, nil),
		loop: prometheus.NewDesc("cutover_proxy_event_loop_total",
			"Plain-HTTP work of the event loops: answers they sent (path=loop) and connections they handed to the HTTP server (path=handoff: upgrades, large or chunked uploads, HTTP/1.0, pipelining, TLS).",
			[]string{"path"}, nil),
		h2: prometheus.NewDesc("cutover_proxy_http2_connections",
			"HTTP/2 client connections open, by listener (TLS listeners that offer h2).",
			[]string{"listener"}, nil),
		tunnelsCut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cutover_proxy_tunnels_cut_total",
			Help: "Tunnels (WebSockets, other upgrades) the proxy closed, by reason: idle (no data either way for tunnel_idle_timeout) or drain (their target's deregistration delay ended).",
		}, []string{"reason"}),
		takenOver: prometheus.NewDesc("cutover_proxy_taken_over_connections",
			"Connections taken over from the HTTP server and open: tunnels (WebSockets, other upgrades) and HTTP/1.0 answers ended by their close.",
			nil, nil),
	}
	for _, r := range []string{cutIdle, cutDrain} {
		m.tunnelsCut.WithLabelValues(r) // shown at 0 before the first
	}
	return m
}

// The reasons of cutover_proxy_tunnels_cut_total.
const (
	cutIdle  = "idle"
	cutDrain = "drain"
)

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
	m.noTarget.Describe(ch)
	m.connectFailed.Describe(ch)
	m.tunnelsCut.Describe(ch)
	ch <- m.takenOver
	ch <- m.targets
	ch <- m.loop
	ch <- m.h2
	ch <- m.connsRefused
	ch <- m.reqsRefused
}

// Collect implements prometheus.Collector; the targets gauge is computed
// at scrape time from the live targets, so it never drifts.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
	m.noTarget.Collect(ch)
	m.connectFailed.Collect(ch)
	m.tunnelsCut.Collect(ch)
	ch <- prometheus.MustNewConstMetric(m.takenOver, prometheus.GaugeValue, float64(m.p.tunnels.Load()))
	served, handed := m.p.loopCounts()
	ch <- prometheus.MustNewConstMetric(m.loop, prometheus.CounterValue, float64(served), "loop")
	ch <- prometheus.MustNewConstMetric(m.loop, prometheus.CounterValue, float64(handed), "handoff")
	for _, l := range m.p.listenerStats() {
		ch <- prometheus.MustNewConstMetric(m.connsRefused, prometheus.CounterValue, float64(l.ConnectionsRefused), l.Listener)
		for code, n := range l.RequestsRefused {
			ch <- prometheus.MustNewConstMetric(m.reqsRefused, prometheus.CounterValue, float64(n), l.Listener, code)
		}
	}
	for l, n := range m.p.http2Open() {
		ch <- prometheus.MustNewConstMetric(m.h2, prometheus.GaugeValue, float64(n), l)
	}
	counts := map[string]*[4]int{}
	for _, t := range m.p.Targets() {
		c := counts[t.Group]
		if c == nil {
			c = new([4]int)
			counts[t.Group] = c
		}
		for s := StateInitial; s <= StateDraining; s++ {
			if s.String() == t.State {
				c[s]++
			}
		}
	}
	for g, c := range counts {
		for s := StateInitial; s <= StateDraining; s++ {
			ch <- prometheus.MustNewConstMetric(m.targets, prometheus.GaugeValue, float64(c[s]), g, s.String())
		}
	}
}

// forgetGroup drops the series of a target group that no longer exists.
func (m *metrics) forgetGroup(name string) {
	m.requests.DeletePartialMatch(prometheus.Labels{"target_group": name})
	m.noTarget.DeletePartialMatch(prometheus.Labels{"target_group": name})
	m.connectFailed.DeletePartialMatch(prometheus.Labels{"target_group": name})
	m.duration.DeleteLabelValues(name)
}

// forgetListener drops the series of a listener that no longer exists.
func (m *metrics) forgetListener(name string) {
	m.requests.DeletePartialMatch(prometheus.Labels{"listener": name})
	m.noTarget.DeletePartialMatch(prometheus.Labels{"listener": name})
	m.connectFailed.DeletePartialMatch(prometheus.Labels{"listener": name})
}

// resolve fills the metric children of f for listener, once per snapshot.
func (m *metrics) resolve(f *forward, listener string) {
	for i, c := range classLabels {
		f.requests[i] = m.requests.WithLabelValues(listener, f.g.name, c)
	}
	f.noTarget = m.noTarget.WithLabelValues(listener, f.g.name)
	f.connectFailed = m.connectFailed.WithLabelValues(listener, f.g.name)
}

package proxy

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// snapshot is one immutable routing table. Apply builds a new one and swaps
// it in atomically; a request uses the snapshot it loaded from start to end,
// so a change never fails a request in flight.
type snapshot struct {
	byAddr map[string]*listenerRoutes
}

// listenerRoutes are the rules of one listener, most specific first.
type listenerRoutes struct {
	name    string
	routes  []*route
	trusted []netip.Prefix // clients whose forwarding headers are kept
	// redirectPort, when not 0, makes the listener redirect to https on it.
	redirectPort int
	// challenge answers ACME HTTP-01 challenges on a redirect listener.
	challenge fasthttp.RequestHandler
}

// route is one rule, resolved to live target groups and their members.
type route struct {
	host, prefix string
	forward      []forward
}

// forward is one weighted target group of a route, with the metric
// children of its (listener, group) pair resolved once, not per request.
type forward struct {
	g        *group
	members  []*target // registered targets, in state order; never draining ones
	weight   int
	requests [5]prometheus.Counter // by status class 1xx..5xx
	noTarget prometheus.Counter
	// connectFailed counts requests that could not connect to a target
	// of the group and were sent to another (reroute).
	connectFailed prometheus.Counter
}

// sortRoutes orders rules by specificity: host+path, host, path, catch-all,
// longer prefixes first.
func sortRoutes(rs []*route) {
	slices.SortStableFunc(rs, func(a, b *route) int {
		return cmp.Or(cmp.Compare(hasHost(b), hasHost(a)), cmp.Compare(len(b.prefix), len(a.prefix)))
	})
}

func hasHost(r *route) int {
	if r.host != "" {
		return 1
	}
	return 0
}

// match returns the most specific route for a request's Host header (any
// case, with or without port) and path. It reads them where the server
// parsed them: routing a request copies nothing.
func (l *listenerRoutes) match(hostHeader, path []byte) *route {
	host := hostOnly(hostHeader)
	for _, r := range l.routes {
		if r.host != "" && !hostIs(host, r.host) {
			continue
		}
		if pathHasPrefix(path, r.prefix) {
			return r
		}
	}
	return nil
}

// pathHasPrefix matches whole path segments: "/api" matches "/api" and
// "/api/x" but not "/apix"; a prefix ending in "/" matches plainly.
func pathHasPrefix(path []byte, prefix string) bool {
	if len(path) < len(prefix) || string(path[:len(prefix)]) != prefix {
		return false
	}
	return len(path) == len(prefix) || prefix == "" || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// hostIs compares a request's host with a rule's (lower case), ignoring case.
func hostIs(host []byte, lower string) bool {
	for _, c := range host {
		if c >= utf8.RuneSelf { // rare: not ASCII, lower-cased as a string
			return strings.ToLower(string(host)) == lower
		}
	}
	return equalFold(host, lower)
}

// hostOnly is a Host header without its port and an IPv6 address's
// brackets, in the case the client sent.
func hostOnly(h []byte) []byte {
	if i := bytes.LastIndexByte(h, ':'); i >= 0 && bytes.IndexByte(h[i:], ']') < 0 {
		h = h[:i]
	}
	return bytes.TrimSuffix(bytes.TrimPrefix(h, []byte{'['}), []byte{']'})
}

// requestHost returns the Host header without port, in lower case.
func requestHost(h []byte) string {
	return strings.ToLower(string(hostOnly(h)))
}

// pick chooses a target group by weight among those with a healthy target,
// then a healthy target in it, never exclude. A group without a healthy
// target gets no traffic while another group of the rule has one (its
// share moves to the others); weight-0 groups never get traffic.
func (r *route) pick(exclude *target) (*forward, *target) {
	if len(r.forward) == 1 {
		f := &r.forward[0]
		if f.weight <= 0 {
			return nil, nil
		}
		return f, f.pickTarget(exclude)
	}
	var skip uint64
	for {
		total := 0
		for i := range r.forward {
			if skip&(1<<i) == 0 {
				total += r.forward[i].weight
			}
		}
		if total <= 0 {
			return nil, nil
		}
		n := rand.IntN(total)
		for i := range r.forward {
			f := &r.forward[i]
			if skip&(1<<i) != 0 || f.weight <= 0 {
				continue
			}
			if n < f.weight {
				if t := f.pickTarget(exclude); t != nil {
					return f, t
				}
				skip |= 1 << i
				break
			}
			n -= f.weight
		}
	}
}

// reroute picks another target for a request that could not connect to
// from, of fw's group, so nothing of it was sent (see pick). It counts that
// failure against fw's group, whose answer it is not, and moves the
// request's in-flight count to the new target. It returns nil when there
// is no other target (the request then gets a 502 of fw's group). ok, when
// not nil, says whether the caller can use a target (the loop needs its
// address as a socket address): when not, nothing changes.
func (r *route) reroute(fw *forward, from *target, ok func(*target) bool) (*forward, *target) {
	nfw, t := r.pick(from)
	if t == nil || ok != nil && !ok(t) {
		return nil, nil
	}
	fw.connectFailed.Inc()
	fw.g.connectFailed.Add(1)
	t.inFlight.Add(1)
	from.inFlight.Add(-1)
	return nfw, t
}

// pickTarget returns the next healthy member round robin, or nil.
func (f *forward) pickTarget(exclude *target) *target {
	n := uint32(len(f.members))
	if n == 0 {
		return nil
	}
	start := f.g.next.Add(1)
	for i := range n {
		t := f.members[(start+i)%n]
		if t != exclude && t.routable() {
			return t
		}
	}
	return nil
}

// noTargetMessage explains a 503: which groups had no healthy target.
func (r *route) noTargetMessage() string {
	var parts []string
	for i := range r.forward {
		f := &r.forward[i]
		if f.weight <= 0 {
			continue
		}
		healthy := 0
		for _, t := range f.members {
			if t.routable() {
				healthy++
			}
		}
		parts = append(parts, fmt.Sprintf("%s (%d of %d healthy)", f.g.name, healthy, len(f.members)))
	}
	return "cutover: no healthy target for " + strings.Join(parts, ", ") + "\n"
}

// primary is the forward entry with the highest weight: the group a 503
// without any healthy target is counted against.
func (r *route) primary() *forward {
	best := &r.forward[0]
	for i := range r.forward {
		if r.forward[i].weight > best.weight {
			best = &r.forward[i]
		}
	}
	return best
}

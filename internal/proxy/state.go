package proxy

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// State is the whole desired routing configuration of the proxy: what the
// admin API accepts, what state.json holds, and what Apply reconciles to.
type State struct {
	Listeners    []Listener    `json:"listeners"`
	TargetGroups []TargetGroup `json:"target_groups"`
}

// Listener accepts HTTP on one address and routes by its rules.
type Listener struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"` // IP:PORT, e.g. 127.0.0.1:8080
	Rules []Rule `json:"rules"`
	// Limits bound slow and oversized requests; zero fields take defaults.
	Limits Limits `json:"limits,omitzero"`
	// TrustedProxies are the CIDRs or IPs of clients whose X-Forwarded-For
	// (extended), other X-Forwarded-* fields, Forwarded and client-address
	// fields (X-Real-IP, Client-IP, True-Client-IP, …) are passed on;
	// from any other client they are replaced by what the proxy sees or
	// dropped. Unset: loopback clients are trusted; ["none"] (TrustNone)
	// trusts nobody.
	TrustedProxies []string `json:"trusted_proxies,omitempty"`
	// TLS makes the listener serve HTTPS; nil: plain HTTP.
	TLS *TLS `json:"tls,omitempty"`
	// RedirectTo names a TLS listener: this one has no rules and answers
	// every request with 308 to https on that listener's port.
	RedirectTo string `json:"redirect_to,omitempty"`
}

// Rule matches requests by host and path prefix (both optional) and forwards
// them to target groups by weight. The most specific rule of a listener wins:
// host+path, then host, then path, longer prefixes first.
type Rule struct {
	Host       string           `json:"host,omitempty"`        // without port, case-insensitive
	PathPrefix string           `json:"path_prefix,omitempty"` // "/api" matches /api and /api/..., not /apix
	Forward    []WeightedTarget `json:"forward"`
}

// WeightedTarget is one target group of a rule and its share of the traffic.
type WeightedTarget struct {
	TargetGroup string `json:"target_group"`
	Weight      int    `json:"weight"`
}

// TargetGroup is a set of interchangeable targets with one health check.
type TargetGroup struct {
	Name   string      `json:"name"`
	Health HealthCheck `json:"health"`
	// DeregistrationDelay bounds how long a removed target keeps serving its
	// in-flight requests; it is dropped as soon as they end. 0 means 30s.
	DeregistrationDelay Duration `json:"deregistration_delay,omitempty"`
	Targets             []Target `json:"targets"`
}

// HealthCheck configures the active checks of every target of a group.
// Zero values take the defaults: path "/", interval 5s, timeout 2s,
// thresholds 2 and 2, success codes "200-399".
type HealthCheck struct {
	Path               string   `json:"path,omitempty"`
	Interval           Duration `json:"interval,omitempty"`
	Timeout            Duration `json:"timeout,omitempty"`
	HealthyThreshold   int      `json:"healthy_threshold,omitempty"`
	UnhealthyThreshold int      `json:"unhealthy_threshold,omitempty"`
	SuccessCodes       string   `json:"success_codes,omitempty"` // "200", "200-299", "200,204"
}

// Target is one instance that serves a group, usually a task's published port.
type Target struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // IP:PORT
}

// Duration is a time.Duration written in JSON as a Go duration string ("2s").
type Duration time.Duration

// String renders d like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string such as "1.5s" or "250ms".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"2s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q: want a duration such as \"2s\" or \"500ms\"", s)
	}
	*d = Duration(v)
	return nil
}

// Scoped returns the listeners and target groups of s whose names start
// with scope + "/": the part of the state one environment's controller owns.
func (s State) Scoped(scope string) State {
	var out State
	for _, l := range s.Listeners {
		if InScope(l.Name, scope) {
			out.Listeners = append(out.Listeners, l)
		}
	}
	for _, g := range s.TargetGroups {
		if InScope(g.Name, scope) {
			out.TargetGroups = append(out.TargetGroups, g)
		}
	}
	return out
}

// InScope reports whether an object name belongs to scope ("ENV/...").
func InScope(name, scope string) bool {
	return strings.HasPrefix(name, scope+"/")
}

// WithScope returns s with the objects of scope replaced by those of part.
// Every name in part must be in scope, so one environment's controller can
// never overwrite another's objects.
func (s State) WithScope(scope string, part State) (State, error) {
	if scope == "" || strings.Contains(scope, "/") {
		return State{}, fmt.Errorf("bad scope %q: want an environment name without \"/\"", scope)
	}
	var bad []string
	for _, l := range part.Listeners {
		if !InScope(l.Name, scope) {
			bad = append(bad, "listener "+quote(l.Name))
		}
	}
	for _, g := range part.TargetGroups {
		if !InScope(g.Name, scope) {
			bad = append(bad, "target group "+quote(g.Name))
		}
	}
	if len(bad) > 0 {
		return State{}, fmt.Errorf("scope %q: %s not named %q (every name must start with the scope)", scope, strings.Join(bad, ", "), scope+"/...")
	}
	var out State
	for _, l := range s.Listeners {
		if !InScope(l.Name, scope) {
			out.Listeners = append(out.Listeners, l)
		}
	}
	for _, g := range s.TargetGroups {
		if !InScope(g.Name, scope) {
			out.TargetGroups = append(out.TargetGroups, g)
		}
	}
	out.Listeners = append(out.Listeners, part.Listeners...)
	out.TargetGroups = append(out.TargetGroups, part.TargetGroups...)
	return out, nil
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

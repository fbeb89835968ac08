package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// maxForward bounds the target groups of one rule (the picker uses a bit mask).
const maxForward = 64

// Validate checks s and returns every problem found, one per line, each
// naming the object and field, what is wrong and what to do.
func (s State) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	groups := map[string]bool{}
	for i, g := range s.TargetGroups {
		at := fmt.Sprintf("target_groups[%d]", i)
		if g.Name == "" {
			add("%s.name is empty: give every target group a name", at)
		} else if groups[g.Name] {
			add("%s.name %q is used twice: target group names must be unique", at, g.Name)
		}
		groups[g.Name] = true
		if g.Name != "" {
			at = fmt.Sprintf("target group %q", g.Name)
		}
		validateHealth(at, g.Health, add)
		if g.DeregistrationDelay < 0 {
			add("%s: deregistration_delay %s is negative", at, g.DeregistrationDelay)
		}
		ids := map[string]bool{}
		for j, t := range g.Targets {
			if t.ID == "" {
				add("%s: targets[%d].id is empty: give every target an id", at, j)
			} else if ids[t.ID] {
				add("%s: target id %q is used twice", at, t.ID)
			}
			ids[t.ID] = true
			if err := checkAddr(t.Addr); err != nil {
				add("%s: target %q addr: %v", at, t.ID, err)
			}
		}
	}

	names, addrs := map[string]bool{}, map[string]string{}
	for i, l := range s.Listeners {
		at := fmt.Sprintf("listeners[%d]", i)
		if l.Name == "" {
			add("%s.name is empty: give every listener a name", at)
		} else if names[l.Name] {
			add("%s.name %q is used twice: listener names must be unique", at, l.Name)
		}
		names[l.Name] = true
		if l.Name != "" {
			at = fmt.Sprintf("listener %q", l.Name)
		}
		if err := checkAddr(l.Addr); err != nil {
			add("%s addr: %v", at, err)
		} else if other, ok := addrs[l.Addr]; ok {
			add("%s addr %s is also the address of listener %q: use another port", at, l.Addr, other)
		} else {
			addrs[l.Addr] = l.Name
		}
		validateLimits(at, l.Limits, add)
		if l.TLS != nil {
			validateTLS(at, l.TLS, add)
		}
		if l.RedirectTo != "" {
			validateRedirect(at, l, s.Listeners, add)
		}
		if _, err := parseTrusted(l.TrustedProxies); err != nil {
			add("%s trusted_proxies: %v", at, err)
		}
		matches := map[string]int{}
		for j, r := range l.Rules {
			rat := fmt.Sprintf("%s rules[%d]", at, j)
			validateRule(rat, r, groups, add)
			key := strings.ToLower(r.Host) + " " + r.PathPrefix
			if k, ok := matches[key]; ok {
				add("%s matches the same host and path prefix as rules[%d]: merge them", rat, k)
			}
			matches[key] = j
		}
	}
	return errors.Join(errs...)
}

func validateRule(at string, r Rule, groups map[string]bool, add func(string, ...any)) {
	if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
		add("%s path_prefix %q must start with \"/\"", at, r.PathPrefix)
	}
	if strings.ContainsAny(r.Host, ":/ ") {
		add("%s host %q: give a host name without scheme, port or path", at, r.Host)
	}
	if len(r.Forward) == 0 {
		add("%s forward is empty: forward to at least one target group", at)
	}
	if len(r.Forward) > maxForward {
		add("%s forwards to %d target groups: at most %d", at, len(r.Forward), maxForward)
	}
	total := 0
	seen := map[string]bool{}
	for _, f := range r.Forward {
		switch {
		case !groups[f.TargetGroup]:
			add("%s forwards to unknown target group %q: define it under target_groups", at, f.TargetGroup)
		case seen[f.TargetGroup]:
			add("%s forwards to target group %q twice", at, f.TargetGroup)
		}
		seen[f.TargetGroup] = true
		if f.Weight < 0 {
			add("%s weight %d of %q is negative: weights are 0 or more", at, f.Weight, f.TargetGroup)
		}
		total += max(f.Weight, 0)
	}
	if len(r.Forward) > 0 && total == 0 {
		add("%s: all weights are 0: give at least one target group a positive weight", at)
	}
}

func validateHealth(at string, h HealthCheck, add func(string, ...any)) {
	if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
		add("%s health.path %q must start with \"/\"", at, h.Path)
	}
	if h.Interval < 0 || h.Timeout < 0 {
		add("%s health interval and timeout must not be negative", at)
	}
	if h.HealthyThreshold < 0 || h.UnhealthyThreshold < 0 {
		add("%s health thresholds must not be negative", at)
	}
	if h.SuccessCodes != "" {
		if _, err := parseCodes(h.SuccessCodes); err != nil {
			add("%s health.success_codes: %v", at, err)
		}
	}
}

// checkAddr accepts IP:PORT with a literal IP and a port in 1..65535.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not IP:PORT (such as 127.0.0.1:8080)", addr)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("%q: host %q is not an IP address (such as 127.0.0.1)", addr, host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number between 1 and 65535", addr, port)
	}
	return nil
}

// validateRedirect checks a listener that redirects to a TLS listener.
func validateRedirect(at string, l Listener, all []Listener, add func(string, ...any)) {
	if len(l.Rules) > 0 {
		add("%s redirects to %q and cannot have rules too: remove its rules", at, l.RedirectTo)
	}
	if l.TLS != nil {
		add("%s redirects to https: it serves plain HTTP, remove its tls", at)
	}
	for _, to := range all {
		if to.Name == l.RedirectTo {
			if to.TLS == nil {
				add("%s redirects to listener %q, which has no tls: give that listener tls", at, l.RedirectTo)
			}
			return
		}
	}
	add("%s redirects to unknown listener %q: name a listener with tls", at, l.RedirectTo)
}

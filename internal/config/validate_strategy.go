package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

func (v *validator) strategy(p string, s *Strategy) {
	if !slices.Contains(strategyTypes, s.Type) {
		v.add(p+".type", "%q is not a strategy (write %s)", s.Type, quoteList(strategyTypes))
		return
	}
	if s.Type == StrategyRolling {
		for _, f := range []struct {
			key string
			set bool
		}{{"traffic", s.Traffic != ""}, {"canary", s.Canary != nil}, {"linear", s.Linear != nil}, {"ready_wait", s.ReadyWait != 0}, {"manual_continue", s.ManualContinue}} {
			if f.set {
				v.add(p+"."+f.key, "applies only to type blue_green (remove it, or set type: blue_green)")
			}
		}
		switch {
		case s.MinimumHealthyPercent < 0 || s.MinimumHealthyPercent > 100:
			v.add(p+".minimum_healthy_percent", "%d is out of range (write 0 to 100)", s.MinimumHealthyPercent)
		case s.MaximumPercent < 100:
			v.add(p+".maximum_percent", "%d is below 100 (write 100 or more)", s.MaximumPercent)
		case s.MinimumHealthyPercent == 100 && s.MaximumPercent == 100:
			v.add(p+".maximum_percent", "with minimum_healthy_percent 100 and maximum_percent 100 no task can be replaced (raise maximum_percent or lower minimum_healthy_percent)")
		}
	} else {
		v.traffic(p, s)
	}
	names := map[string]bool{}
	for i, a := range s.Alarms {
		v.alarm(fmt.Sprintf("%s.alarms[%d]", p, i), a)
		if names[a.Name] {
			v.add(fmt.Sprintf("%s.alarms[%d].name", p, i), "alarm %q is defined twice (give each alarm its own name)", a.Name)
		}
		names[a.Name] = true
	}
}

func (v *validator) traffic(p string, s *Strategy) {
	set := 0
	for _, b := range []bool{s.Traffic != "", s.Canary != nil, s.Linear != nil} {
		if b {
			set++
		}
	}
	if set > 1 {
		v.add(p, "set only one of traffic, canary and linear (remove the others)")
		return
	}
	if s.Traffic != "" && !slices.Contains(trafficNames, s.Traffic) {
		v.add(p+".traffic", "%q is not a traffic configuration (write %s, or use canary or linear)", s.Traffic, quoteList(trafficNames))
	}
	for key, st := range map[string]*Step{"canary": s.Canary, "linear": s.Linear} {
		if st == nil {
			continue
		}
		if st.Percent < 1 || st.Percent > 99 {
			v.add(p+"."+key+".percent", "%d is out of range (write 1 to 99)", st.Percent)
		}
		if st.Interval <= 0 {
			v.add(p+"."+key+".interval", "must be more than 0 (write for example 1m)")
		}
	}
}

func (v *validator) alarm(p string, a Alarm) {
	if !slices.Contains(alarmMetrics, a.Metric) {
		v.add(p+".metric", "%q is not a metric (write %s)", a.Metric, quoteList(alarmMetrics))
	} else if _, err := parseThreshold(a.Metric, a.Threshold); a.Threshold == "" {
		v.add(p+".threshold", "missing (add a threshold for %s)", a.Metric)
	} else if err != nil {
		v.add(p+".threshold", "%s", err)
	}
	if a.Period <= 0 {
		v.add(p+".period", "must be more than 0 (write for example 10s)")
	}
	if _, _, err := parseMofN(a.Datapoints); err != nil {
		v.add(p+".datapoints", "%s", err)
	}
}

var methodRe = regexp.MustCompile(`^[A-Z]+$`)

func (v *validator) hooks(p string, hs *Hooks) {
	for _, set := range hs.Ordered() {
		for i, h := range set.Hooks {
			hp := fmt.Sprintf("%s.%s[%d]", p, set.Key, i)
			switch {
			case h.HTTP != nil && len(h.Command) > 0:
				v.add(hp, "both http and command are set (keep one)")
			case h.HTTP == nil && len(h.Command) == 0:
				v.add(hp, "neither http nor command is set (add http: { path: /health } or command: [program, args...])")
			case h.HTTP != nil:
				v.httpCheck(hp+".http", h.HTTP)
			}
			if len(h.PassEnv) > 0 && len(h.Command) == 0 {
				v.add(hp+".pass_env", "is for command hooks (an http check gets no environment; remove it)")
			}
			for j, name := range h.PassEnv {
				if !envNameRe.MatchString(name) {
					v.add(fmt.Sprintf("%s.pass_env[%d]", hp, j), "%q is not a variable name (write letters, digits and _, such as DATABASE_URL)", name)
				}
			}
			if h.Timeout <= 0 {
				v.add(hp+".timeout", "must be more than 0 (write for example 30s)")
			}
		}
	}
}

func (v *validator) httpCheck(p string, c *HTTPCheck) {
	if !strings.HasPrefix(c.Path, "/") {
		v.add(p+".path", "%q must start with / (write %q)", c.Path, "/"+c.Path)
	}
	if !methodRe.MatchString(c.Method) {
		v.add(p+".method", "%q is not an HTTP method (write for example GET)", c.Method)
	}
	if c.Listener != ListenerTest && c.Listener != ListenerProduction {
		v.add(p+".listener", "%q is not a listener (write %s)", c.Listener, quoteList([]string{ListenerTest, ListenerProduction}))
	}
	if c.ExpectStatus < 100 || c.ExpectStatus > 599 {
		v.add(p+".expect_status", "%d is not an HTTP status (write for example 200)", c.ExpectStatus)
	}
}

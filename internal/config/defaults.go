package config

import (
	"fmt"
	"time"
)

// Default values. They are filled in by applyDefaults and nowhere else.
const (
	DefaultDockerfile          = "Dockerfile"
	DefaultHealthPath          = "/"
	DefaultHealthInterval      = 5 * time.Second
	DefaultHealthTimeout       = 2 * time.Second
	DefaultHealthyThreshold    = 2
	DefaultUnhealthyThreshold  = 3
	DefaultSuccessCodes        = "200-399"
	DefaultDesiredCount        = 1
	DefaultDeregistrationDelay = 5 * time.Second // ALB: 300s; a local deploy should not wait minutes
	DefaultStopTimeout         = 10 * time.Second
	DefaultListenPort          = 8080
	DefaultTerminationWait     = 5 * time.Minute
	DefaultApprovalTimeout     = 168 * time.Hour // CodePipeline's 7 days
	DefaultAlarmPeriod         = 10 * time.Second
	DefaultAlarmDatapoints     = "1 of 1"
	DefaultHookTimeout         = 30 * time.Second
	DefaultMinimumHealthy      = 100
	DefaultMaximumPercent      = 200
)

// explicit says whether path was written in the source with a value. A zero value that was
// written (desired_count: 0, enable: false) is kept; an absent one gets the default. For a
// Config built in Go rather than parsed, nothing is explicit and zero values mean unset.
func (c *Config) explicit(path string) bool {
	p, ok := c.keys[path]
	return ok && !p.null
}

// applyDefaults fills in every default. It runs after decoding and before Validate.
func (c *Config) applyDefaults() {
	if c.Retention.Revisions == 0 && !c.explicit("retention.revisions") {
		c.Retention.Revisions = DefaultRetainedRevisions
	}
	for name, s := range c.Services {
		if s == nil {
			s = &Service{}
			c.Services[name] = s
		}
		c.serviceDefaults("services."+name, s, len(c.Services) == 1)
	}
	for name, e := range c.Environments {
		if e == nil {
			e = &Environment{}
			c.Environments[name] = e
		}
		c.environmentDefaults("environments."+name, e)
	}
	if c.Pipeline != nil {
		for i := range c.Pipeline.Stages {
			for j := range c.Pipeline.Stages[i].Actions {
				a := &c.Pipeline.Stages[i].Actions[j]
				c.setInt(&a.RunOrder, fmt.Sprintf("pipeline.stages[%d].actions[%d].run_order", i, j), 1)
			}
		}
	}
}

func (c *Config) serviceDefaults(path string, s *Service, only bool) {
	if b := s.Build; b != nil {
		setString(&b.Context, ".")
		setString(&b.Dockerfile, DefaultDockerfile)
	}
	h := &s.Health
	setString(&h.Path, DefaultHealthPath)
	c.setDuration(&h.Interval, path+".health.interval", DefaultHealthInterval)
	// A fast interval without a timeout would otherwise get a timeout longer than itself.
	c.setDuration(&h.Timeout, path+".health.timeout", min(DefaultHealthTimeout, h.Interval.Std()/2))
	c.setInt(&h.HealthyThreshold, path+".health.healthy_threshold", DefaultHealthyThreshold)
	c.setInt(&h.UnhealthyThreshold, path+".health.unhealthy_threshold", DefaultUnhealthyThreshold)
	setString(&h.SuccessCodes, DefaultSuccessCodes)
	// A host route matches every path; a lone service without a route takes all traffic.
	if s.Route.PathPrefix == "" && (s.Route.Host != "" || only) {
		s.Route.PathPrefix = "/"
	}
	c.setInt(&s.DesiredCount, path+".desired_count", DefaultDesiredCount)
	c.setDuration(&s.DeregistrationDelay, path+".deregistration_delay", DefaultDeregistrationDelay)
	c.setDuration(&s.StopTimeout, path+".stop_timeout", DefaultStopTimeout)
}

func (c *Config) environmentDefaults(path string, e *Environment) {
	setString(&e.Platform, PlatformLocal)
	if x := e.ECS; x != nil {
		setString(&x.LaunchType, LaunchTypeFargate)
		for name, s := range x.Services {
			if s == nil {
				s = &ECSService{}
				x.Services[name] = s
			}
			if svc := c.Services[name]; svc != nil && svc.Static != nil {
				continue // a bucket and a distribution, not an ECS service
			}
			setString(&s.Service, name)
			setString(&s.Container, name)
		}
	}
	setString(&e.Listen.Address, DefaultListenAddress)
	c.setInt(&e.Listen.Port, path+".listen.port", DefaultListenPort)
	c.setInt(&e.Listen.TestPort, path+".listen.test_port", e.Listen.Port+1)
	if e.Approval != nil {
		c.setDuration(&e.Approval.Timeout, path+".approval.timeout", DefaultApprovalTimeout)
	}

	s, sp := &e.Strategy, path+".strategy"
	setString(&s.Type, StrategyRolling)
	if s.Type == StrategyBlueGreen && s.Canary == nil && s.Linear == nil {
		setString(&s.Traffic, TrafficAllAtOnce)
	}
	c.setDuration(&s.TerminationWait, sp+".termination_wait", DefaultTerminationWait)
	c.setInt(&s.MinimumHealthyPercent, sp+".minimum_healthy_percent", DefaultMinimumHealthy)
	c.setInt(&s.MaximumPercent, sp+".maximum_percent", DefaultMaximumPercent)
	c.setTrue(&s.CircuitBreaker.Enable, sp+".circuit_breaker.enable")
	c.setTrue(&s.CircuitBreaker.Rollback, sp+".circuit_breaker.rollback")
	c.setTrue(&s.AutoRollback.OnFailure, sp+".auto_rollback.on_failure")
	c.setTrue(&s.AutoRollback.OnAlarm, sp+".auto_rollback.on_alarm")
	c.setTrue(&s.AutoRollback.OnStop, sp+".auto_rollback.on_stop")
	for i := range s.Alarms {
		a, ap := &s.Alarms[i], fmt.Sprintf("%s.alarms[%d]", sp, i)
		setString(&a.Name, a.Metric)
		c.setDuration(&a.Period, ap+".period", DefaultAlarmPeriod)
		setString(&a.Datapoints, DefaultAlarmDatapoints)
	}

	for _, set := range e.Hooks.Ordered() {
		for i := range set.Hooks {
			h, hp := &set.Hooks[i], fmt.Sprintf("%s.hooks.%s[%d]", path, set.Key, i)
			c.setDuration(&h.Timeout, hp+".timeout", DefaultHookTimeout)
			if h.HTTP != nil {
				setString(&h.HTTP.Method, "GET")
				setString(&h.HTTP.Listener, ListenerTest)
				c.setInt(&h.HTTP.ExpectStatus, hp+".http.expect_status", 200)
			}
		}
	}
}

func setString(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func (c *Config) setInt(p *int, path string, v int) {
	if *p == 0 && !c.explicit(path) {
		*p = v
	}
}

func (c *Config) setDuration(p *Duration, path string, v time.Duration) {
	if *p == 0 && !c.explicit(path) {
		*p = Duration(v)
	}
}

func (c *Config) setTrue(p *bool, path string) {
	if !*p && !c.explicit(path) {
		*p = true
	}
}

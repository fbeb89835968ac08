package config

import "time"

// Strategy types.
const (
	StrategyRolling   = "rolling"
	StrategyBlueGreen = "blue_green"
)

// Predefined traffic shifting configurations, named as in AWS CodeDeploy.
const (
	TrafficAllAtOnce                    = "AllAtOnce"
	TrafficCanary10Percent5Minutes      = "Canary10Percent5Minutes"
	TrafficCanary10Percent15Minutes     = "Canary10Percent15Minutes"
	TrafficLinear10PercentEvery1Minute  = "Linear10PercentEvery1Minute"
	TrafficLinear10PercentEvery3Minutes = "Linear10PercentEvery3Minutes"
)

var (
	strategyTypes = []string{StrategyRolling, StrategyBlueGreen}
	trafficNames  = []string{
		TrafficAllAtOnce,
		TrafficCanary10Percent5Minutes,
		TrafficCanary10Percent15Minutes,
		TrafficLinear10PercentEvery1Minute,
		TrafficLinear10PercentEvery3Minutes,
	}
	// predefined maps each traffic name to its custom equivalent (nil = all at once).
	predefined = map[string]struct{ canary, linear *Step }{
		TrafficAllAtOnce:                    {},
		TrafficCanary10Percent5Minutes:      {canary: &Step{Percent: 10, Interval: Duration(5 * time.Minute)}},
		TrafficCanary10Percent15Minutes:     {canary: &Step{Percent: 10, Interval: Duration(15 * time.Minute)}},
		TrafficLinear10PercentEvery1Minute:  {linear: &Step{Percent: 10, Interval: Duration(time.Minute)}},
		TrafficLinear10PercentEvery3Minutes: {linear: &Step{Percent: 10, Interval: Duration(3 * time.Minute)}},
	}
)

// Strategy is how a new revision replaces the running one in an environment.
type Strategy struct {
	Type    string `yaml:"type,omitempty" json:"type,omitempty" jsonschema:"enum=rolling,enum=blue_green,default=rolling"`
	Traffic string `yaml:"traffic,omitempty" json:"traffic,omitempty" jsonschema:"enum=AllAtOnce,enum=Canary10Percent5Minutes,enum=Canary10Percent15Minutes,enum=Linear10PercentEvery1Minute,enum=Linear10PercentEvery3Minutes" jsonschema_description:"blue_green only: how traffic moves to the new revision. AllAtOnce by default. Alternatively write canary or linear."`
	Canary  *Step  `yaml:"canary,omitempty" json:"canary,omitempty" jsonschema_description:"blue_green only: shift percent, wait interval, then shift the rest."`
	Linear  *Step  `yaml:"linear,omitempty" json:"linear,omitempty" jsonschema_description:"blue_green only: shift percent more every interval until 100."`

	ReadyWait       Duration `yaml:"ready_wait,omitempty" json:"ready_wait,omitempty" jsonschema_description:"blue_green: wait this long with the test listener on the new revision before shifting production traffic."`
	ManualContinue  bool     `yaml:"manual_continue,omitempty" json:"manual_continue,omitempty" jsonschema_description:"blue_green: wait for an explicit continue before shifting production traffic (ready_wait is then the time limit)."`
	Bake            Duration `yaml:"bake,omitempty" json:"bake,omitempty" jsonschema_description:"Time watched by the alarms after all traffic has moved."`
	TerminationWait Duration `yaml:"termination_wait,omitempty" json:"termination_wait,omitempty" jsonschema:"default=5m" jsonschema_description:"blue_green: how long the previous revision stays alive; rollback during it is a traffic flip."`

	MinimumHealthyPercent int            `yaml:"minimum_healthy_percent,omitempty" json:"minimum_healthy_percent,omitempty" jsonschema:"minimum=0,maximum=100,default=100"`
	MaximumPercent        int            `yaml:"maximum_percent,omitempty" json:"maximum_percent,omitempty" jsonschema:"minimum=100,default=200"`
	CircuitBreaker        CircuitBreaker `yaml:"circuit_breaker,omitempty" json:"circuit_breaker,omitzero"`
	Alarms                []Alarm        `yaml:"alarms,omitempty" json:"alarms,omitempty"`
	AutoRollback          AutoRollback   `yaml:"auto_rollback,omitempty" json:"auto_rollback,omitzero"`
}

// Step is a custom canary or linear traffic shift.
type Step struct {
	Percent  int      `yaml:"percent" json:"percent" jsonschema:"required,minimum=1,maximum=99"`
	Interval Duration `yaml:"interval" json:"interval" jsonschema:"required"`
}

// CircuitBreaker stops a rolling deployment whose tasks fail to start or to become healthy.
type CircuitBreaker struct {
	Enable   bool `yaml:"enable,omitempty" json:"enable,omitempty" jsonschema:"default=true"`
	Rollback bool `yaml:"rollback,omitempty" json:"rollback,omitempty" jsonschema:"default=true"`
}

// AutoRollback says which events roll a deployment back.
type AutoRollback struct {
	OnFailure bool `yaml:"on_failure,omitempty" json:"on_failure,omitempty" jsonschema:"default=true"`
	OnAlarm   bool `yaml:"on_alarm,omitempty" json:"on_alarm,omitempty" jsonschema:"default=true"`
	OnStop    bool `yaml:"on_stop,omitempty" json:"on_stop,omitempty" jsonschema:"default=true"`
}

// TrafficStep is one point of a traffic shifting schedule: move Percent of the production
// traffic to the new revision, then wait Wait before the next step.
type TrafficStep struct {
	Percent int      `json:"percent"`
	Wait    Duration `json:"wait"`
}

// TrafficSteps turns the traffic setting into a concrete schedule that always ends at
// {100, 0}. It returns nil for a rolling strategy, which does not shift traffic by weight.
func (s Strategy) TrafficSteps() []TrafficStep {
	if s.Type != StrategyBlueGreen {
		return nil
	}
	canary, linear := s.Canary, s.Linear
	if p, ok := predefined[s.Traffic]; ok && canary == nil && linear == nil {
		canary, linear = p.canary, p.linear
	}
	var steps []TrafficStep
	switch {
	case canary != nil && canary.Percent > 0 && canary.Percent < 100:
		steps = append(steps, TrafficStep{Percent: canary.Percent, Wait: canary.Interval})
	case linear != nil && linear.Percent > 0 && linear.Percent < 100:
		for p := linear.Percent; p < 100; p += linear.Percent {
			steps = append(steps, TrafficStep{Percent: p, Wait: linear.Interval})
		}
	}
	return append(steps, TrafficStep{Percent: 100})
}

// CircuitBreakerThreshold is the number of failed tasks that trips the rolling circuit
// breaker for a desired count, as ECS computes it: clamp(ceil(0.5 × desired), 3, 200).
func CircuitBreakerThreshold(desired int) int {
	return min(max((desired+1)/2, 3), 200)
}

package proxy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func validState() State {
	return State{
		Listeners: []Listener{{Name: "prod/production", Addr: "127.0.0.1:8080", Rules: []Rule{
			{PathPrefix: "/api", Forward: []WeightedTarget{{"prod/backend/blue", 90}, {"prod/backend/green", 10}}},
		}}},
		TargetGroups: []TargetGroup{
			{Name: "prod/backend/blue", Health: HealthCheck{Path: "/health", Interval: Duration(time.Second), SuccessCodes: "200-299"}, Targets: []Target{{ID: "a", Addr: "127.0.0.1:3001"}}},
			{Name: "prod/backend/green"},
		},
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	if err := validState().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		mutate func(*State)
		want   string
	}{
		{"unknown group", func(s *State) { s.Listeners[0].Rules[0].Forward[1].TargetGroup = "nope" }, `unknown target group "nope"`},
		{"negative weight", func(s *State) { s.Listeners[0].Rules[0].Forward[1].Weight = -1 }, "negative"},
		{"all zero", func(s *State) {
			s.Listeners[0].Rules[0].Forward[0].Weight, s.Listeners[0].Rules[0].Forward[1].Weight = 0, 0
		}, "all weights are 0"},
		{"bad listener addr", func(s *State) { s.Listeners[0].Addr = "localhost:80" }, `host "localhost" is not an IP address`},
		{"bad port", func(s *State) { s.Listeners[0].Addr = "127.0.0.1:99999" }, "between 1 and 65535"},
		{"bad target addr", func(s *State) { s.TargetGroups[0].Targets[0].Addr = "3001" }, `target "a" addr`},
		{"duplicate group", func(s *State) { s.TargetGroups[1].Name = s.TargetGroups[0].Name }, "used twice"},
		{"duplicate listener addr", func(s *State) {
			s.Listeners = append(s.Listeners, Listener{Name: "prod/test", Addr: "127.0.0.1:8080"})
		}, "also the address"},
		{"bad codes", func(s *State) { s.TargetGroups[0].Health.SuccessCodes = "ok" }, "success_codes"},
		{"bad path", func(s *State) { s.Listeners[0].Rules[0].PathPrefix = "api" }, `must start with "/"`},
	} {
		s := validState()
		c.mutate(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestWithScopeTouchesOnlyItsScope(t *testing.T) {
	base := validState()
	staging := State{TargetGroups: []TargetGroup{{Name: "staging/web"}}, Listeners: []Listener{{Name: "staging/p", Addr: "127.0.0.1:9090", Rules: []Rule{{Forward: []WeightedTarget{{"staging/web", 1}}}}}}}
	both, err := base.WithScope("staging", staging)
	if err != nil {
		t.Fatal(err)
	}
	if len(both.Listeners) != 2 || len(both.TargetGroups) != 3 {
		t.Fatalf("merged %+v", both)
	}
	gone, err := both.WithScope("prod", State{})
	if err != nil || len(gone.Listeners) != 1 || gone.Listeners[0].Name != "staging/p" {
		t.Fatalf("removing scope prod: %+v %v", gone, err)
	}
	if _, err := base.WithScope("staging", validState()); err == nil || !strings.Contains(err.Error(), `"prod/production"`) {
		t.Fatalf("a scope must not carry another scope's objects: %v", err)
	}
}

func TestDurationJSON(t *testing.T) {
	var h HealthCheck
	if err := json.Unmarshal([]byte(`{"interval":"1.5s","timeout":"250ms"}`), &h); err != nil {
		t.Fatal(err)
	}
	if time.Duration(h.Interval) != 1500*time.Millisecond || time.Duration(h.Timeout) != 250*time.Millisecond {
		t.Fatalf("%+v", h)
	}
	b, _ := json.Marshal(h)
	if !strings.Contains(string(b), `"interval":"1.5s"`) {
		t.Fatalf("%s", b)
	}
	if err := json.Unmarshal([]byte(`{"interval":5}`), &h); err == nil || !strings.Contains(err.Error(), "duration string") {
		t.Fatalf("a number should be refused with a hint: %v", err)
	}
}

// FuzzDecodeState feeds the admin API's decoding and validation arbitrary
// bodies: it must never panic, and a state it accepts must survive a JSON
// round trip unchanged in validity.
func FuzzDecodeState(f *testing.F) {
	good, _ := json.Marshal(validState())
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"listeners":[{"name":"a/b","addr":"127.0.0.1:1","rules":[{"forward":[{"target_group":"x","weight":1}]}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var s State
		if err := decodeJSON(bytes.NewReader(body), &s); err != nil {
			return
		}
		err := s.Validate()
		_, _ = s.WithScope("prod", s.Scoped("prod"))
		if err != nil {
			return
		}
		again, _ := json.Marshal(s)
		var s2 State
		if err := decodeJSON(bytes.NewReader(again), &s2); err != nil {
			t.Fatalf("re-decoding a valid state: %v", err)
		}
		if err := s2.Validate(); err != nil {
			t.Fatalf("a valid state became invalid after a round trip: %v", err)
		}
	})
}

package main

import (
	"encoding/json"
	"time"
)

// event is one line of `cutover deploy --output json` (deploy.Event).
type event struct {
	Time       time.Time      `json:"time"`
	Deployment string         `json:"deployment"`
	Phase      string         `json:"phase"`
	Kind       string         `json:"kind"`
	Message    string         `json:"message"`
	Traffic    map[string]int `json:"traffic,omitempty"`
	Status     string         `json:"status,omitempty"`
}

// result is the deployment object cutover prints after the events.
type result struct {
	ID       string `json:"id"`
	Revision string `json:"revision"`
	Status   string `json:"status"`
	Reason   string `json:"reason"`
}

// parseLine reads one stdout line: an event, or the final deployment object.
func parseLine(line []byte) (event, *result, error) {
	var probe struct {
		Kind string `json:"kind"`
		ID   string `json:"id"`
	}
	if err := json.Unmarshal(line, &probe); err != nil {
		return event{}, nil, err
	}
	if probe.Kind == "" && probe.ID != "" {
		var r result
		err := json.Unmarshal(line, &r)
		return event{}, &r, err
	}
	var ev event
	err := json.Unmarshal(line, &ev)
	return ev, nil, err
}

// first returns the first event at or after from that matches.
func first(evs []event, from time.Time, match func(event) bool) (event, bool) {
	for _, ev := range evs {
		if !ev.Time.Before(from) && match(ev) {
			return ev, true
		}
	}
	return event{}, false
}

// newColor is the color of the replacement set: the one production traffic
// gives 0% when the test listener moves to it (AllowTestTraffic), or the
// only color of a first deployment.
func newColor(evs []event) string {
	for _, ev := range evs {
		if ev.Kind != "traffic" {
			continue
		}
		best, low := "", 101
		for c, v := range ev.Traffic {
			if v < low || (v == low && c < best) {
				best, low = c, v
			}
		}
		return best
	}
	return ""
}

func isHealthy(ev event) bool { return ev.Kind == "progress" && ev.Message == "new set healthy" }

// switchTimes returns when the new set was healthy and when production
// traffic was 100% on it, from the controller's own event times.
func switchTimes(evs []event) (healthy, full time.Time, ok bool) {
	color := newColor(evs)
	h, ok := first(evs, time.Time{}, isHealthy)
	if !ok || color == "" {
		return healthy, full, false
	}
	f, ok := first(evs, h.Time, func(ev event) bool { return ev.Kind == "traffic" && ev.Traffic[color] == 100 })
	return h.Time, f.Time, ok
}

// flipBack is the traffic event of a rollback: production back on the original set.
func flipBack(evs []event) (event, bool) {
	return first(evs, time.Time{}, func(ev event) bool { return ev.Kind == "traffic" && ev.Phase == "RollingBack" })
}

// failed is the first failure the controller reported (a task, a health check, an alarm, a request).
func failed(evs []event) (event, bool) {
	return first(evs, time.Time{}, func(ev event) bool { return ev.Kind == "failure" })
}

// finished is the result event: the deployment reached its terminal phase.
func finished(evs []event) (event, bool) {
	return first(evs, time.Time{}, func(ev event) bool { return ev.Kind == "result" })
}

// firstShift is the first production traffic the new set received.
func firstShift(evs []event) (event, bool) {
	color := newColor(evs)
	return first(evs, time.Time{}, func(ev event) bool {
		return ev.Kind == "traffic" && ev.Phase == "Shifting" && ev.Traffic[color] > 0
	})
}

package main

import (
	"strings"
	"testing"
	"time"
)

// A blue/green deployment of green over blue as cutover prints it, then rolled back.
func sampleEvents(t0 time.Time) []event {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	return []event{
		{Time: at(0), Phase: "Pending", Kind: "phase", Message: "blue_green deployment into the green set"},
		{Time: at(900), Phase: "Install", Kind: "progress", Message: "waiting for the new set to be healthy"},
		{Time: at(2000), Phase: "Install", Kind: "progress", Message: "new set healthy"},
		{Time: at(2004), Phase: "AllowTestTraffic", Kind: "traffic", Traffic: map[string]int{"blue": 100, "green": 0}},
		{Time: at(2015), Phase: "Shifting", Kind: "traffic", Traffic: map[string]int{"blue": 90, "green": 10}},
		{Time: at(12015), Phase: "Shifting", Kind: "failure", Message: `alarm "error_rate"`},
		{Time: at(12020), Phase: "RollingBack", Kind: "traffic", Traffic: map[string]int{"blue": 100}},
		{Time: at(12500), Phase: "RolledBack", Kind: "result", Status: "rolled_back"},
	}
}

func TestEventTimesOfARolledBackCanary(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	evs := sampleEvents(t0)
	if c := newColor(evs); c != "green" {
		t.Fatalf("new color %q, want green", c)
	}
	if _, _, ok := switchTimes(evs); ok {
		t.Fatal("a canary that never reached 100% has no switch time")
	}
	shift, ok := firstShift(evs)
	if !ok || shift.Time.Sub(t0) != 2015*time.Millisecond {
		t.Fatalf("first shift %v %v", shift, ok)
	}
	f, ok := failed(evs)
	if !ok || f.Time.Sub(shift.Time) != 10*time.Second {
		t.Fatalf("failure %v %v", f, ok)
	}
	flip, ok := flipBack(evs)
	if !ok || flip.Traffic["blue"] != 100 {
		t.Fatalf("flip %v %v", flip, ok)
	}
	if end, ok := finished(evs); !ok || end.Status != "rolled_back" {
		t.Fatalf("result %v %v", end, ok)
	}
}

func TestSwitchTimesAllAtOnce(t *testing.T) {
	t0 := time.Now()
	evs := sampleEvents(t0)[:4]
	evs = append(evs, event{Time: t0.Add(2017 * time.Millisecond), Phase: "Shifting", Kind: "traffic", Traffic: map[string]int{"blue": 0, "green": 100}})
	healthy, full, ok := switchTimes(evs)
	if !ok || full.Sub(healthy) != 17*time.Millisecond {
		t.Fatalf("switch %v → %v (%v), want 17ms", healthy, full, ok)
	}
}

func TestParseLineTellsEventsFromTheResult(t *testing.T) {
	ev, res, err := parseLine([]byte(`{"time":"2026-01-02T03:04:05.123456789Z","deployment":"d-1","phase":"Shifting","kind":"traffic","message":"production traffic: blue 0%, green 100%","traffic":{"blue":0,"green":100}}`))
	if err != nil || res != nil || ev.Traffic["green"] != 100 || ev.Time.Nanosecond() != 123456789 {
		t.Fatalf("event: %+v %v %v", ev, res, err)
	}
	_, res, err = parseLine([]byte(`{"id":"d-1","project":"p","revision":"r-1","status":"rolled_back","reason":"alarm","traffic_percent":0}`))
	if err != nil || res == nil || res.Status != "rolled_back" || res.Reason != "alarm" {
		t.Fatalf("result: %+v %v", res, err)
	}
	if _, _, err := parseLine([]byte("building backend")); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Fatalf("a non-JSON line must be an error, got %v", err)
	}
}

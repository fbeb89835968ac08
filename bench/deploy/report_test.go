package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/loadgen"
)

func TestGoalsAndTable(t *testing.T) {
	t0 := time.Now()
	rep := Report{Project: "p", Load: "1000 req/s", Scenarios: []Scenario{
		{Key: "good", Name: "good deploy", Status: "succeeded",
			Figures: []Figure{figure(figHealthyFull, t0, t0.Add(17*time.Millisecond), true, "events")},
			Load:    loadgen.Result{Requests: 7000, RPS: 1000, Status: map[int]int{200: 7000}}},
		{Key: "port", Name: "wrong port", Status: "rolled_back", Reason: "nothing is listening on container port 3001",
			Figures: []Figure{figure(figStartDone, t0, t0.Add(12*time.Second), true, "")},
			Load:    loadgen.Result{Requests: 9000, Failed: 3, RPS: 1000, Status: map[int]int{200: 8997, 502: 3}}},
	}}
	good := durationGoal("switch", rep.find("good"), figHealthyFull, 100*time.Millisecond)
	port := durationGoal("port", rep.find("port"), figStartDone, 10*time.Second)
	missing := durationGoal("exit", rep.find("exit"), figStartDone, 10*time.Second)
	if !good.Met || good.Measured != "17ms" || port.Met || port.Measured != "12s" || missing.Met || missing.Measured != "n/a" {
		t.Fatalf("duration goals: %+v %+v %+v", good, port, missing)
	}
	if g := noFailuresGoal("good", rep.find("good")); !g.Met {
		t.Fatalf("0 failed at 1000 req/s must be met: %+v", g)
	}
	if g := noFailuresGoal("port", rep.find("port")); g.Met {
		t.Fatalf("3 failed must be missed: %+v", g)
	}
	rep.Goals = []Goal{good, port}

	var table bytes.Buffer
	if err := rep.writeTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"17ms", "MET", "MISSED", "8997×200, 3×502", "nothing is listening"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := rep.writeJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Scenarios[0].Figures[0].Millis != 17 {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}

// The variants are written by replacing lines of the example's cutover.yaml:
// each must still be a valid config with the intended strategy and fault.
func TestVariantsOfTheExampleAreValid(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", exampleDir, "cutover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{example: string(src), file: filepath.Join(t.TempDir(), "cutover.yaml")}
	for _, v := range []variant{{allAtOnce: true, terminationWait: "20s"}, {fault: "port=5201"}} {
		if err := h.writeConfig(v); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(h.file)
		cfg, err := config.ParseDir(h.file, filepath.Join("..", "..", exampleDir), data)
		if err != nil {
			t.Fatalf("variant %+v: %v", v, err)
		}
		s := cfg.Environments["production"].Strategy
		if v.allAtOnce && (s.Traffic != config.TrafficAllAtOnce || s.Bake.Std() != 0 || s.TerminationWait.Std() != 20*time.Second) {
			t.Errorf("variant %+v: strategy %+v", v, s)
		}
		if !v.allAtOnce && s.Traffic != config.TrafficLinear10PercentEvery1Minute {
			t.Errorf("variant %+v must keep the example's strategy, got %q", v, s.Traffic)
		}
		if got := cfg.Services["backend"].Env["BLUEMED_FAULT"]; got != v.fault {
			t.Errorf("variant %+v: BLUEMED_FAULT=%q", v, got)
		}
	}
}

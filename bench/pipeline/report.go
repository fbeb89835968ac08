package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Report is what one run measured; -json prints it as is. Durations are
// milliseconds.
type Report struct {
	Project       string     `json:"project"`
	Execution     string     `json:"execution"`
	Commit        string     `json:"commit"`
	Status        string     `json:"status"`
	Error         string     `json:"error,omitempty"`
	Wall          float64    `json:"wall_ms"`        // the `cutover run` process
	EndToEnd      float64    `json:"end_to_end_ms"`  // Wall without the person's wait
	PersonWait    float64    `json:"person_wait_ms"` // approval requested to decided
	Overhead      float64    `json:"overhead_ms"`
	OverheadParts []Part     `json:"overhead_parts"`
	Work          []Part     `json:"work"`
	Stages        []StageRow `json:"stages"`
	Goals         []Goal     `json:"goals"`
	Attribution   string     `json:"attribution"`
}

// Part is a named share of the wall time.
type Part struct {
	Name   string  `json:"name"`
	Millis float64 `json:"ms"`
}

// StageRow is one stage of the execution with its actions.
type StageRow struct {
	Name    string      `json:"name"`
	Status  string      `json:"status"`
	Reason  string      `json:"reason,omitempty"`
	Millis  float64     `json:"ms"`
	Actions []ActionRow `json:"actions"`
}

// ActionRow is one action of a stage.
type ActionRow struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"`
	Status  string  `json:"status"`
	Millis  float64 `json:"ms"`
	Summary string  `json:"summary,omitempty"`
}

// Goal is one target of issue 4 and whether this run met it.
type Goal struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Value  string `json:"value"`
	Met    bool   `json:"met"`
}

func fmtMs(v float64) string {
	d := time.Duration(v * float64(time.Millisecond))
	if d >= time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}

func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *Report) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "pipeline: commit %s on main to production (project %s, execution %s: %s)\n\n", r.Commit, r.Project, r.Execution, r.Status)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE / ACTION\tKIND\tSTATUS\tTIME\tSUMMARY")
	for _, s := range r.Stages {
		t := fmtMs(s.Millis)
		if s.Millis == 0 {
			t = "-"
		}
		fmt.Fprintf(tw, "%s\t\t%s\t%s\t%s\n", s.Name, s.Status, t, s.Reason)
		for _, a := range s.Actions {
			t := fmtMs(a.Millis)
			if a.Millis == 0 {
				t = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", a.Name, a.Kind, a.Status, t, a.Summary)
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "WALL TIME\t\t\tTIME\t")
	fmt.Fprintf(tw, "cutover run, process start to exit\t\t\t%s\t\n", fmtMs(r.Wall))
	for _, p := range r.Work {
		fmt.Fprintf(tw, "  %s\t\t\t%s\t\n", p.Name, fmtMs(p.Millis))
	}
	fmt.Fprintf(tw, "  engine overhead\t\t\t%s\t\n", fmtMs(r.Overhead))
	for _, p := range r.OverheadParts {
		fmt.Fprintf(tw, "    %s\t\t\t%s\t\n", p.Name, fmtMs(p.Millis))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n(parallel work counts once, so the parts may sum to less than the stage times)\nattribution: %s\n\n", r.Attribution)
	for _, g := range r.Goals {
		verdict := "MISSED"
		if g.Met {
			verdict = "MET"
		}
		fmt.Fprintf(w, "goal: %s %s: %s (%s)\n", g.Name, g.Target, verdict, g.Value)
	}
	return nil
}

package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/deploy"
)

// A deployment's status line says step N of M and the time left overall: a
// bar on a terminal, plain words otherwise (logs, CI).
func TestStatusLineShowsStepAndTimeLeft(t *testing.T) {
	ev := deploy.Event{Time: time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC), Phase: "Shifting", Message: "shifting traffic",
		Step: 5, Steps: 9, WaitLeft: 42 * time.Second, Left: 7 * time.Minute, Traffic: map[string]int{"blue": 70, "green": 30}}
	plain := (&progress{traffic: ev.Traffic}).statusLine(ev)
	for _, want := range []string{"step 5/9", "42s left", "about 7m0s left overall", "blue 70%/green 30%"} {
		if !strings.Contains(plain, want) {
			t.Errorf("plain status line %q lacks %q", plain, want)
		}
	}
	if strings.Contains(plain, "[") {
		t.Errorf("plain status line has a bar: %q", plain)
	}
	tty := (&progress{tty: true}).statusLine(ev)
	if !strings.Contains(tty, "[#####....] step 5/9") {
		t.Errorf("terminal status line %q lacks the bar", tty)
	}
	// Without step figures (a rolling deployment), nothing about steps.
	ev.Step, ev.Steps, ev.Left = 0, 0, 0
	if l := (&progress{}).statusLine(ev); strings.Contains(l, "step") || strings.Contains(l, "overall") {
		t.Errorf("status line without steps: %q", l)
	}
}

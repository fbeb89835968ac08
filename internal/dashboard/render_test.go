package dashboard

import "testing"

func TestPhaseWords(t *testing.T) {
	for in, want := range map[string]string{"TerminationWait": "termination wait", "Baking": "baking", "in_progress": "in progress", "": ""} {
		if got := phaseWords(in); got != want {
			t.Errorf("phaseWords(%q) = %q, want %q", in, got, want)
		}
	}
}

package dashboard

import (
	"strings"
	"testing"
)

func TestPhaseWords(t *testing.T) {
	for in, want := range map[string]string{"TerminationWait": "termination wait", "Baking": "baking", "in_progress": "in progress", "": ""} {
		if got := phaseWords(in); got != want {
			t.Errorf("phaseWords(%q) = %q, want %q", in, got, want)
		}
	}
}

// The approval page shows the evidence's warning (staging serves another
// revision than the one that ran the commit) above staging's figures.
func TestApprovalPageShowsTheEvidenceWarning(t *testing.T) {
	var b strings.Builder
	data := approvalView{Staging: stagingEvidence{Environment: "staging", Warning: "staging ran this commit as revision r-1 but now serves r-2"}}
	if err := parsePages()["approval"].Execute(&b, view{Page: "approval", Project: "shop", Data: data}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `<p class="refused">staging ran this commit as revision r-1 but now serves r-2</p>`) {
		t.Errorf("the approval page does not show the evidence's warning:\n%s", b.String())
	}
}

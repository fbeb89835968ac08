package dashboard

import (
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/release"
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

// An environment card says which secrets have no value before a deploy
// fails on them: names only.
func TestEnvironmentCardShowsMissingSecrets(t *testing.T) {
	var b strings.Builder
	card := envCard{Name: "staging", Status: release.Status{Environment: "staging", Status: "serving", MissingSecrets: []string{"API_KEY", "DB_PASSWORD"}}}
	if err := parsePages()["environment"].Execute(&b, view{Page: "environment", Project: "shop", Data: environmentView{Card: card}}); err != nil {
		t.Fatal(err)
	}
	want := `<p class="refused">secrets without a value: <code>API_KEY</code>, <code>DB_PASSWORD</code>: the next deployment fails until each is set (<code>cutover secrets set staging NAME</code> on the daemon's machine)</p>`
	if !strings.Contains(b.String(), want) {
		t.Errorf("the environment page does not name the secrets without a value:\n%s", b.String())
	}
}

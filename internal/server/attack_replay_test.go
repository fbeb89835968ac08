package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// Attack (replay): X-GitHub-Delivery is not signed. A captured delivery
// (its body and signature, from a proxy's log or GitHub's Recent
// Deliveries page) resent without the header, with another id, or with the
// signature's hex in capitals, was accepted as new: it queued the same
// commit again and superseded the execution waiting at its production
// approval, as often as the attacker liked. A delivery is now its body's
// MAC: each replay is a duplicate.
func TestAttackReplayedGitHubDeliveryUnderAnotherIDRunsNothing(t *testing.T) {
	d := newDaemon(t)
	s := d.server()
	start(t, s)
	url := "http://" + s.Address() + "/webhooks/github"
	head := testenv.Git(t, d.repo, "rev-parse", "main")
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": head,
		"repository": map[string]any{"full_name": "acme/app"}, "sender": map[string]any{"login": "octocat"}})
	m := hmac.New(sha256.New, []byte(githubSecret))
	m.Write(body)
	sig := "sha256=" + hex.EncodeToString(m.Sum(nil))
	deliver := func(sig, delivery string) (int, string) {
		h := map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sig}
		if delivery != "" {
			h["X-GitHub-Delivery"] = delivery
		}
		return send(t, url, h, string(body))
	}
	if code, b := deliver(sig, "11111111-aaaa"); code != http.StatusOK || !strings.Contains(b, `"accepted"`) {
		t.Fatalf("the delivery: %d %s", code, b)
	}
	var first store.Execution
	waitFor(t, "main to wait at its approval", func() bool {
		var ok bool
		first, ok = d.find(func(x store.Execution) bool { return x.Branch == "main" && x.Status == store.ExecutionWaiting })
		return ok
	})
	for _, replay := range []struct{ sig, delivery string }{
		{sig, "11111111-aaaa"}, {sig, ""}, {sig, "11111111-aaab"}, {"sha256=" + strings.ToUpper(strings.TrimPrefix(sig, "sha256=")), "22222222-bbbb"},
	} {
		if code, b := deliver(replay.sig, replay.delivery); code != http.StatusOK || !strings.Contains(b, `"duplicate"`) {
			t.Errorf("replay with X-GitHub-Delivery %q, signature %.16s…: %d %s, want 200 duplicate", replay.delivery, replay.sig, code, b)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if st, n := d.status(first.ID), len(d.executions()); st != store.ExecutionWaiting || n != 1 {
		t.Errorf("after the replays the execution waiting at its approval is %s, and there are %d executions (want waiting, 1)", st, n)
	}
}

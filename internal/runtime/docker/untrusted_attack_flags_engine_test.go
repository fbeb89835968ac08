package docker

import (
	"context"
	"strings"
	"testing"
	"time"
)

// On the real engine (20.10, whose parser reads an ADD's arguments as a JSON
// array when they start with '[', and ignores what follows it): the check
// read the array from the first '[' of the line, and one inside a flag hid
// the array after the flag. The engine fetched its URL.
func TestAttackUntrustedJSONArrayAfterAFlagWithABracket(t *testing.T) {
	rt := newRuntime(t)
	for _, tc := range []struct{ name, df string }{
		{"bracket in a flag", "FROM scratch\nADD --chown=[0] [\"JSONURL\", \"/x\"] z\n"},
		{"JSON array in a flag", "FROM scratch\nADD --chown=[\"0\",\"0\"] [\"JSONURL\", \"/x\"] z\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, hits := fetchCounter(t)
			jsonURL := strings.ReplaceAll(strings.Replace(url, ":", "\\u003a", 1), "/", "\\/")
			df := strings.ReplaceAll(tc.df, "JSONURL", jsonURL)
			dir := writeContext(t, map[string]string{"Dockerfile": df})
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			img, err := rt.Build(ctx, BuildRequest{ContextDir: dir, NoNetwork: true, Labels: map[string]string{"dev.cutover.test": "true"}})
			if err == nil {
				rt.RemoveImage(ctx, img.ID)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("the untrusted build fetched the URL %d times (%v)", n, err)
			}
			if err == nil || !strings.Contains(err.Error(), "line 2: ADD") {
				t.Errorf("untrusted Build: %v, want the check to refuse line 2's ADD", err)
			}
		})
	}
}

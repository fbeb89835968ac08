package docker

import (
	"context"
	"strings"
	"testing"
	"time"
)

// On the real engine (this machine's 20.10, whose classic builder reads the
// Dockerfile with its own, older parser): Dockerfiles that the check read
// one way and the engine another. Each passed the check as it first was, and
// the engine fetched the URL on its own network; each is refused now.
func TestAttackUntrustedDockerfileReadDifferentlyByTheEngine(t *testing.T) {
	rt := newRuntime(t)
	for _, tc := range []struct{ name, df string }{
		// An engine that does not know the check directive stops reading
		// directives at it, so the escape directive after it is a comment.
		{"escape directive after a check directive", "# check=skip=all\n# escape=`\nFROM scratch\nUSER 1 `\nADD URL /x\n"},
		// A no-break space after the # is white space to one parser only.
		{"escape directive after a no-break space", "#\u00a0escape=`\nFROM scratch\nUSER 1 `\nADD URL /x\n"},
		// One parser drops every CR before the line's end, the other one.
		{"two CRs after a line continuation", "FROM scratch\nUSER 1 \\\r\r\nADD URL /x\n"},
		// The engine's parser takes \ as the escape in flags, whatever the
		// escape directive.
		{"backtick escape in a flag", "# escape=`\nFROM scratch\nADD --chown=0` URL a /x\n"},
		// The engine's parser reads the JSON array and ignores what follows.
		{"JSON array followed by a word", "FROM scratch\nADD [\"JSONURL\", \"/x\"] x\n"},
		// The reading without heredocs made a line too long for the parser,
		// and a reading that failed passed.
		{"heredoc reading with a line made too long", "FROM scratch\nCOPY <<CMD /x\nADD URL /x\n#" + strings.Repeat("<<", 32000) + "\nCMD\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, hits := fetchCounter(t)
			jsonURL := strings.ReplaceAll(strings.Replace(url, ":", "\\u003a", 1), "/", "\\/")
			df := strings.ReplaceAll(strings.ReplaceAll(tc.df, "JSONURL", jsonURL), "URL", url)
			dir := writeContext(t, map[string]string{"Dockerfile": df, "a": "a\n", "<<CMD": "a\n"})
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			img, err := rt.Build(ctx, BuildRequest{ContextDir: dir, NoNetwork: true, Labels: map[string]string{"dev.cutover.test": "true"}})
			if err == nil {
				rt.RemoveImage(ctx, img.ID)
				t.Errorf("the untrusted build passed the check and built")
			} else if !strings.Contains(err.Error(), "Dockerfile") {
				t.Logf("untrusted Build: %v", err)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("the untrusted build fetched the URL %d times (%v)", n, err)
			}
		})
	}
}

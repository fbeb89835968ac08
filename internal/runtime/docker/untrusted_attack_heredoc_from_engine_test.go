package docker

import (
	"context"
	"strings"
	"testing"
	"time"
)

// On the real engine: a heredoc hides a FROM from a reading with heredocs,
// and the 20.10 engine, which has none, reads the heredoc's lines as
// instructions: a stage FROM a base whose ONBUILD trigger ADDs a URL. The
// check read the heredoc-free reading for ADDs only, and the base's
// triggers were never read.
func TestAttackUntrustedHeredocHidingAFrom(t *testing.T) {
	rt := newRuntime(t)
	url, hits := fetchCounter(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	tag := onbuildImage(ctx, t, rt, "FROM scratch\nONBUILD ADD "+url+" /fetched\n")
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY <<CMD /x\nFROM " + tag + "\nCMD\n",
		"<<CMD":      "a file named as the heredoc's start, for an engine that reads no heredocs\n",
	})
	var out strings.Builder
	img, err := rt.Build(ctx, BuildRequest{ContextDir: dir, NoNetwork: true, Output: &out, Labels: map[string]string{"dev.cutover.test": "true"}})
	if err == nil {
		rt.RemoveImage(ctx, img.ID)
	}
	t.Logf("untrusted Build: %v\n%s", err, out.String())
	if n := hits.Load(); n != 0 {
		t.Errorf("the untrusted build fetched the URL %d times (%v)", n, err)
	}
	if err == nil || !strings.Contains(err.Error(), "line 3: FROM "+tag+": its ONBUILD trigger ADD") {
		t.Errorf("untrusted Build: %v, want the check to refuse line 3's base", err)
	}
}

package docker

import (
	"context"
	"strings"
	"testing"
	"time"
)

// On the real engine: a heredoc of lines ending in \ reaches, in the
// canonical form, an engine that reads its lines as instructions, and whose
// parser joins continued lines in time growing with the square of their
// number: 200,000 of them (800 kB) kept the 20.10 engine busy for 9 s;
// 600,000 (2.4 MB) for 65 s, 60 s of them after the client had given up
// the build (a 5 s deadline). The check refuses it before the engine sees it.
func TestAttackUntrustedHeredocOfContinuations(t *testing.T) {
	rt := newRuntime(t)
	df := "FROM scratch\nCOPY <<EOF /x\n" + strings.Repeat("a \\\n", 200000) + "EOF\n"
	dir := writeContext(t, map[string]string{"Dockerfile": df})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	img, err := rt.Build(ctx, BuildRequest{ContextDir: dir, NoNetwork: true, Labels: map[string]string{"dev.cutover.test": "true"}})
	if err == nil {
		rt.RemoveImage(ctx, img.ID)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
		if len(msg) > 300 {
			msg = msg[:300]
		}
	}
	t.Logf("untrusted Build after %v: %s", time.Since(start), msg)
	if !strings.Contains(msg, "a heredoc line ends in \\") {
		t.Errorf("untrusted Build: %s, want the check to refuse the heredoc line ending in \\", msg)
	}
}

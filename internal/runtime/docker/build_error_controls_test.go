package docker

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode"
)

// On the real engine: an untrusted Dockerfile whose failing step holds
// terminal escapes (an OSC 52 clipboard write, a cursor move up, a BEL).
// The build's error, which becomes the execution's error that `cutover
// executions` prints as it is, holds no control character: the step and
// the builder's message quote the Dockerfile's line.
func TestBuildErrorHoldsNoControlCharacters(t *testing.T) {
	rt := newRuntime(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY missing\x1b]52;c;aGk=\x07\x1bM\x07 /x\n",
	})
	var out strings.Builder
	img, err := rt.Build(ctx, BuildRequest{ContextDir: dir, NoNetwork: true, Output: &out, Labels: map[string]string{"dev.cutover.test": "true"}})
	if err == nil {
		removeOnly(ctx, rt, img.ID)
		t.Fatalf("the build passed:\n%s", out.String())
	}
	if i := strings.IndexFunc(err.Error(), unicode.IsControl); i >= 0 || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("the build's error holds a control character, or not the file's name: %q", err)
	}
}

package docker

import (
	"context"
	"testing"
	"time"
)

// On the real engine: a base image's ONBUILD triggers are run one by one,
// each read as a Dockerfile of its own. Read together, a trigger ending in
// the escape character continued into the next one, an ADD of a URL.
func TestAttackUntrustedBaseTriggersReadTogether(t *testing.T) {
	rt := newRuntime(t)
	url, hits := fetchCounter(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	tag := onbuildImage(ctx, t, rt, "# escape=`\nFROM scratch\nONBUILD USER 1 \\\nONBUILD ADD "+url+" /fetched\n")
	child := writeContext(t, map[string]string{"Dockerfile": "FROM " + tag + "\n"})
	img, err := rt.Build(ctx, BuildRequest{ContextDir: child, NoNetwork: true, Labels: map[string]string{"dev.cutover.test": "true"}})
	if err == nil {
		rt.RemoveImage(ctx, img.ID)
		t.Errorf("the untrusted build FROM %s passed the check and built", tag)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the untrusted build fetched the URL %d times (%v)", n, err)
	}
}

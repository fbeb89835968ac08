package docker

import (
	"strings"
	"testing"
)

// A base image's trigger is read by the engine as a Dockerfile of its own, a
// parser directive on its first line included: one spanning lines is refused.
func TestAttackBaseTriggerWithLines(t *testing.T) {
	for _, trigger := range []string{
		"# escape=`\nADD [\"http\\u003a\\/\\/127.0.0.1:9\\/secret# a`\nENV \", \"/fetched\"]",
		"RUN true\r\n",
		"RUN <<EOF\necho hi\nEOF",
	} {
		if err := checkTrigger(trigger); err == nil || !strings.Contains(err.Error(), "spans lines") {
			t.Errorf("%q: %v, want it refused", trigger, err)
		}
	}
	if err := checkTrigger("RUN echo hi"); err != nil {
		t.Errorf("a plain trigger: %v", err)
	}
	if err := checkTrigger("ADD http://127.0.0.1:9/x /x"); err == nil || !strings.Contains(err.Error(), "fetches from the network") {
		t.Errorf("an ADD of a URL: %v", err)
	}
}

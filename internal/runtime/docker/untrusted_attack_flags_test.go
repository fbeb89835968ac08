package docker

import (
	"strings"
	"testing"
)

// An ADD's JSON array is what follows its keyword and flags, as engines'
// parsers cut them off; a flag may hold a '[' (or a whole array) of its own,
// in quotes too.
func TestAttackJSONArrayAfterAFlagWithABracket(t *testing.T) {
	for _, df := range []string{
		"FROM scratch\nADD --chown=[0] [\"http\\u003a\\/\\/127.0.0.1:9/x\", \"/x\"] z\n",
		"FROM scratch\nADD --chown=x[ [\"http\\u003a\\/\\/127.0.0.1:9/x\", \"/x\"] z\n",
		"FROM scratch\nADD --chown=[\"0\",\"0\"] [\"http\\u003a\\/\\/127.0.0.1:9/x\", \"/x\"] z\n",
		"FROM scratch\nADD --chown=\"[ \" [\"http\\u003a\\/\\/127.0.0.1:9/x\", \"/x\"] z\n",
		"FROM scratch\nADD --chown=1 -- [\"http\\u003a\\/\\/127.0.0.1:9/x\", \"/x\"] z\n",
		"FROM scratch\nONBUILD ADD --chown=[0] [\"http\\u003a\\/\\/127.0.0.1:9/x\", \"/x\"] z\n",
	} {
		add, err := remoteAdd([]byte(df))
		if err != nil || add.line != 2 || !strings.Contains(add.reason, "network") {
			t.Errorf("%q: %+v (%v), want line 2 refused", df, add, err)
		}
	}
	for _, tc := range []struct {
		line, rest string
		flags      []string
	}{
		{"ADD --chown=1:1 a b", "a b", []string{"--chown=1:1"}},
		{"ADD\t--chown=\"a b\"  [\"x\", \"y\"] z", "[\"x\", \"y\"] z", []string{"--chown=a b"}},
		{"ADD --chown=a\\ b c d", "c d", []string{"--chown=a b"}},
		{"ADD --link -- --x y", "--x y", []string{"--link"}},
		{"ADD --chown=1\u00a0[\"x\"] y", "[\"x\"] y", []string{"--chown=1\xc2"}},
		{"ADD", "", nil},
		{"ADD --link", "", []string{"--link"}},
	} {
		rest, flags := argsAfterFlags(tc.line)
		if rest != tc.rest || strings.Join(flags, "|") != strings.Join(tc.flags, "|") {
			t.Errorf("argsAfterFlags(%q) = %q, %q; want %q, %q", tc.line, rest, flags, tc.rest, tc.flags)
		}
	}
}

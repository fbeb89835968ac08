package docker

import "testing"

// A pull request's Dockerfile cannot fetch from the network through ADD,
// which the builder runs on the engine's network whatever RUN's network is.
func TestRemoteAddIsFound(t *testing.T) {
	for _, tc := range []struct {
		df   string
		line int
	}{
		{"FROM scratch\nADD http://127.0.0.1:9/steal /stolen\n", 2},
		{"FROM scratch\nadd --chown=1:1 HTTPS://example.invalid/x /x\n", 2},
		{"FROM scratch\nADD \\\n  # a comment\n  https://example.invalid/x /x\n", 2},
		{"FROM scratch\nADD [\"http://example.invalid/x\", \"/x\"]\n", 2},
		{"FROM scratch\nADD git@github.com:o/r.git /src\n", 2},
		{"FROM scratch\nADD local.tar /x\nCOPY http-notes.txt /y\n# ADD http://in.a/comment /z\n", 0},
	} {
		if line, _ := remoteAdd([]byte(tc.df)); line != tc.line {
			t.Errorf("%q: line %d, want %d", tc.df, line, tc.line)
		}
	}
}

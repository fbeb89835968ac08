package docker

import (
	"strings"
	"testing"
)

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
		if line, _, _ := remoteAdd([]byte(tc.df)); line != tc.line {
			t.Errorf("%q: line %d, want %d", tc.df, line, tc.line)
		}
	}
}

// The ways a pull request's Dockerfile got an ADD of a URL past the check:
// a build argument holding the URL, and the escape parser directive turning
// a backtick into the line continuation. Legitimate ADDs still pass.
func TestAttackRemoteAddBypass(t *testing.T) {
	for _, tc := range []struct {
		name, df string
		line     int
		reason   string // part of the reason given
	}{
		{"ARG then $U", "FROM scratch\nARG U=http://127.0.0.1:8790/x\nADD $U /x\n", 3, "variable"},
		{"ARG then ${U}", "FROM scratch\nARG U=http://127.0.0.1:8790/x\nADD ${U} /x\n", 3, "variable"},
		{"variable inside a source", "FROM scratch\nARG H=127.0.0.1:8790\nADD http://$H/x /x\n", 3, "network"},
		{"variable in JSON form", "FROM scratch\nARG U=http://127.0.0.1:8790/x\nADD [\"${U}\", \"/x\"]\n", 3, "variable"},
		{"escape directive backtick", "# escape=`\nFROM scratch\nADD `\n  http://127.0.0.1:8790/x /x\n", 3, "network"},
		{"escape directive spaced and upper case", "#  ESCAPE = `\nFROM scratch\nADD --chown=1:1 `\n  # a comment\n\n  http://127.0.0.1:8790/x /x\n", 3, "network"},
		{"escape directive after syntax", "# syntax=docker/dockerfile:1\n# escape=`\nFROM scratch\nADD `\n  http://127.0.0.1:8790/x /x\n", 4, "network"},
		{"JSON form", "FROM scratch\nADD [\"http://127.0.0.1:8790/x\", \"/x\"]\n", 2, "network"},
		{"JSON form with unicode escapes", "FROM scratch\nADD [\"\\u0068ttp\\u003a//127.0.0.1:8790/x\", \"/x\"]\n", 2, "network"},
		{"variable in JSON form with unicode escapes", "FROM scratch\nARG U=http://127.0.0.1:8790/x\nADD [\"\\u0024{U}\", \"/x\"]\n", 3, "variable"},
		{"variable in JSON form after a flag", "FROM scratch\nARG U=http://127.0.0.1:8790/x\nADD --chown=1:1 [\"\\u0024{U}\", \"/x\"]\n", 3, "variable"},
		{"quotes and escapes inside the URL", "FROM scratch\nADD h\"ttp\":\\//127.0.0.1:8790/x /x\n", 2, "network"},
		{"backtick escape inside the URL", "# escape=`\nFROM scratch\nADD http:`//127.0.0.1:8790/x /x\n", 3, "network"},
		{"single quotes", "FROM scratch\nADD 'http:'//127.0.0.1:8790/x /x\n", 2, "network"},
		{"lowercase add", "FROM scratch\nadd http://127.0.0.1:8790/x /x\n", 2, "network"},
		{"checksum flag", "FROM scratch\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d http://127.0.0.1:8790/x /x\n", 2, "network"},
		{"other scheme", "FROM scratch\nADD ftp://127.0.0.1:8790/x /x\n", 2, "network"},
		{"empty continuation line", "FROM scratch\nADD \\\n\n  http://127.0.0.1:8790/x /x\n", 2, "network"},
		{"comment ending in the escape", "FROM scratch\n# a comment \\\nADD http://127.0.0.1:8790/x /x\n", 3, "network"},
		{"byte order mark", "\ufeffADD http://127.0.0.1:8790/x /x\n", 1, "network"},
		{"onbuild", "FROM scratch\nONBUILD ADD http://127.0.0.1:8790/x /x\n", 2, "network"},
		{"CRLF", "FROM scratch\r\nADD \\\r\n  http://127.0.0.1:8790/x /x\r\n", 2, "network"},
		// A continuation line is appended as it is, with nothing in between.
		{"continuation inside the URL", "FROM busybox\nADD http:\\\n//169.254.169.254/latest/meta-data/ /m\n", 2, "network"},
		{"continuation inside the keyword", "FROM busybox\nAD\\\nD http://127.0.0.1:9/x /x\n", 2, "network"},
		{"continuation inside the keyword after ONBUILD", "FROM busybox\nONBUILD AD\\\nD http://127.0.0.1:9/x /x\n", 2, "network"},
		{"continuation inside a JSON string", "FROM busybox\nADD [\"http\\u003a\\\n//127.0.0.1:9/x\", \"/x\"]\n", 2, "network"},
		{"continuation inside the URL with a comment and spaces", "FROM busybox\nADD http:\\ \t\n# c\n//127.0.0.1:9/x /x\n", 2, "network"},
		{"backtick continuation inside the URL", "# escape=`\nFROM busybox\nADD http:`\n//127.0.0.1:9/x /x\n", 3, "network"},
		{"escape alone on the first line", "FROM busybox\n\\\nADD http://127.0.0.1:9/x /x\n", 2, "network"},

		{"local archive", "FROM scratch\nADD app.tar.gz /app\n", 0, ""},
		{"chown flag", "FROM scratch\nADD --chown=1:1 src/ /src/\n", 0, ""},
		{"continuation before an indented local source", "FROM scratch\nADD --chown=1:1 \\\n    src/ /src/\n", 0, ""},
		{"continuation inside a local source", "FROM scratch\nADD sr\\\nc/ /src/\n", 0, ""},
		{"escaped escape at the end is no continuation", "FROM scratch\nRUN echo http:\\\\\nADD app.tar.gz /app\n", 0, ""},
		{"variable in the destination and flags", "FROM scratch\nARG APP=/app\nARG UID=1\nADD --chown=$UID:$UID app.tar.gz $APP/\n", 0, ""},
		{"JSON form local", "FROM scratch\nADD [\"app.tar.gz\", \"/app\"]\n", 0, ""},
		{"heredoc", "FROM scratch\nADD <<EOF /etc/motd\nhello\nEOF\n", 0, ""},
		{"backtick not an escape by default", "FROM scratch\nRUN echo `date`\nADD app.tar.gz /app\n", 0, ""},
		{"directive after an instruction is a comment", "FROM scratch\n# escape=`\nADD app.tar.gz `\n  /app\n", 0, ""},
	} {
		line, src, reason := remoteAdd([]byte(tc.df))
		if line != tc.line || !strings.Contains(reason, tc.reason) {
			t.Errorf("%s: %q: line %d (%q: %q), want line %d and a reason with %q", tc.name, tc.df, line, src, reason, tc.line, tc.reason)
		}
	}
}

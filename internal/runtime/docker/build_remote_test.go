package docker

import (
	"fmt"
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
		add, err := remoteAdd([]byte(tc.df))
		if err != nil || add.line != tc.line {
			t.Errorf("%q: line %d (%v), want %d", tc.df, add.line, err, tc.line)
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
		{"escape directive backtick", "# escape=`\nFROM scratch\nADD `\n  http://127.0.0.1:8790/x /x\n", 0, "its escape parser directive makes ` the escape character"},
		{"escape directive spaced and upper case", "#  ESCAPE = `\nFROM scratch\nADD --chown=1:1 `\n  # a comment\n\n  http://127.0.0.1:8790/x /x\n", 0, "its escape parser directive makes ` the escape character"},
		{"escape directive after syntax", "# syntax=docker/dockerfile:1\n# escape=`\nFROM scratch\nADD `\n  http://127.0.0.1:8790/x /x\n", 0, "its escape parser directive makes ` the escape character"},
		{"JSON form", "FROM scratch\nADD [\"http://127.0.0.1:8790/x\", \"/x\"]\n", 2, "network"},
		{"JSON form with unicode escapes", "FROM scratch\nADD [\"\\u0068ttp\\u003a//127.0.0.1:8790/x\", \"/x\"]\n", 2, "network"},
		{"variable in JSON form with unicode escapes", "FROM scratch\nARG U=http://127.0.0.1:8790/x\nADD [\"\\u0024{U}\", \"/x\"]\n", 3, "variable"},
		{"variable in JSON form after a flag", "FROM scratch\nARG U=http://127.0.0.1:8790/x\nADD --chown=1:1 [\"\\u0024{U}\", \"/x\"]\n", 3, "variable"},
		{"quotes and escapes inside the URL", "FROM scratch\nADD h\"ttp\":\\//127.0.0.1:8790/x /x\n", 2, "network"},
		{"backtick escape inside the URL", "# escape=`\nFROM scratch\nADD http:`//127.0.0.1:8790/x /x\n", 0, "its escape parser directive makes ` the escape character"},
		{"single quotes", "FROM scratch\nADD 'http:'//127.0.0.1:8790/x /x\n", 2, "network"},
		{"lowercase add", "FROM scratch\nadd http://127.0.0.1:8790/x /x\n", 2, "network"},
		{"checksum flag", "FROM scratch\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d http://127.0.0.1:8790/x /x\n", 2, "network"},
		{"other scheme", "FROM scratch\nADD ftp://127.0.0.1:8790/x /x\n", 2, "network"},
		{"empty continuation line", "FROM scratch\nADD \\\n\n  http://127.0.0.1:8790/x /x\n", 2, "network"},
		{"comment ending in the escape", "FROM scratch\n# a comment \\\nADD http://127.0.0.1:8790/x /x\n", 3, "network"},
		{"byte order mark", "\ufeffFROM scratch\nADD http://127.0.0.1:8790/x /x\n", 2, "network"},
		{"onbuild", "FROM scratch\nONBUILD ADD http://127.0.0.1:8790/x /x\n", 2, "network"},
		{"CRLF", "FROM scratch\r\nADD \\\r\n  http://127.0.0.1:8790/x /x\r\n", 2, "network"},
		// A continuation line is appended as it is, with nothing in between.
		{"continuation inside the URL", "FROM busybox\nADD http:\\\n//169.254.169.254/latest/meta-data/ /m\n", 2, "network"},
		{"continuation inside the keyword", "FROM busybox\nAD\\\nD http://127.0.0.1:9/x /x\n", 2, "network"},
		{"continuation inside the keyword after ONBUILD", "FROM busybox\nONBUILD AD\\\nD http://127.0.0.1:9/x /x\n", 2, "network"},
		{"continuation inside a JSON string", "FROM busybox\nADD [\"http\\u003a\\\n//127.0.0.1:9/x\", \"/x\"]\n", 2, "network"},
		{"continuation inside the URL with a comment and spaces", "FROM busybox\nADD http:\\ \t\n# c\n//127.0.0.1:9/x /x\n", 2, "network"},
		{"backtick continuation inside the URL", "# escape=`\nFROM busybox\nADD http:`\n//127.0.0.1:9/x /x\n", 0, "its escape parser directive makes ` the escape character"},
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
		{"directive after an instruction is a comment", "FROM scratch\n# escape=`\nRUN echo `\nADD http://127.0.0.1:9/x /x\n", 4, "network"},
		{"heredoc hiding an ADD from this parser", "FROM busybox\nCOPY <<CMD /x\nADD http://127.0.0.1:9/x /x\nCMD\n", 3, "network"},
		{"heredoc hiding an ONBUILD ADD", "FROM busybox\nRUN <<-CMD\n\tONBUILD ADD http://127.0.0.1:9/x /x\n\tCMD\n", 3, "network"},
		{"git shorthand", "FROM scratch\nADD github.com/o/r /src\n", 2, "network"},
		{"ADD in a later stage", "FROM busybox AS b\nRUN true\nFROM scratch\nCOPY --from=b /bin/sh /sh\nADD \\\n  --chmod=644 \\\n  http://127.0.0.1:9/x /x\n", 5, "network"},
	} {
		add, err := remoteAdd([]byte(tc.df))
		got := add.reason
		if wantErr := tc.line == 0 && tc.reason != ""; wantErr && err != nil {
			got = err.Error()
		} else if err != nil {
			got = "unexpected error: " + err.Error()
		}
		if add.line != tc.line || !strings.Contains(got, tc.reason) || (tc.reason == "" && got != "") {
			t.Errorf("%s: %q: line %d (%q: %q), want line %d and %q", tc.name, tc.df, add.line, add.src, got, tc.line, tc.reason)
		}
	}
}

// What the builder cannot read refuses an untrusted build with the line the
// builder names, rather than passing unchecked.
func TestUnreadableDockerfileIsRefused(t *testing.T) {
	for _, tc := range []struct{ df, want string }{
		{"FROM scratch\nADD app.tar.gz `\n  /app\n", "line 3: unknown instruction: /app"},
		{"ADD http://127.0.0.1:9/x /x\n", "no build stage"},
		{"FROM scratch\nADD --frobnicate http://127.0.0.1:9/x /x\n", "line 2: unknown flag: --frobnicate"},
		{"FROM scratch\nRUN true\nADD \xff http://127.0.0.1:9/x /x\n", "line 3 is not UTF-8 text"},
	} {
		add, err := remoteAdd([]byte(tc.df))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v (%+v), want an error with %q", tc.df, err, add, tc.want)
		}
	}
}

// A pull request writes the Dockerfile: whatever it holds, the check neither
// panics nor lets through an ADD whose source is a URL as written.
func FuzzRemoteAdd(f *testing.F) {
	for _, df := range []string{
		"FROM scratch\nADD http://127.0.0.1:9/x /x\n",
		"# escape=`\nFROM busybox\nADD http:`\n//127.0.0.1:9/x /x\n",
		"FROM busybox\nCOPY <<CMD /x\nADD http://127.0.0.1:9/x /x\nCMD\n",
		"ARG B=busybox\nFROM $B AS b\nONBUILD ADD [\"http://x/y\", \"/z\"]\n",
		"FROM scratch\nADD --chown=1:1 \\\n  src/ /src/\n",
	} {
		f.Add([]byte(df))
	}
	f.Fuzz(func(t *testing.T, df []byte) {
		add, err := remoteAdd(df)
		if err != nil {
			return
		}
		if add.line > 0 && add.reason == "" {
			t.Fatalf("line %d without a reason", add.line)
		}
		// A plain ADD of a URL on a line of its own, appended, is found.
		if !strings.Contains(string(df), "<<") && !strings.HasSuffix(strings.TrimRight(string(df), " \t"), "\\") {
			more := append(append([]byte{}, df...), "\nADD http://127.0.0.1:9/x /x\n"...)
			if a, err := remoteAdd(more); err == nil && a.line == 0 {
				t.Fatalf("%q: the appended ADD was not found", more)
			}
		}
	})
}

// Dockerfiles that this parser reads one way and the 20.10 engine's classic
// builder another (found by an attack review: each hid an ADD of a URL from
// the check, and the engine fetched it). Each is refused now: the escape
// directive is refused, a carriage return inside a line too, a JSON array
// is read with the words after it too, and the heredoc-free reading keeps
// the lines' lengths and refuses what it cannot read.
func TestAttackDockerfileReadDifferentlyByTheEngine(t *testing.T) {
	for _, tc := range []struct{ name, df, want string }{
		{"escape directive after a check directive", "# check=skip=all\n# escape=`\nFROM scratch\nUSER 1 `\nADD http://127.0.0.1:9/x /x\n", "escape parser directive"},
		{"URL escaped for the engine's escape only", "# check=skip=all\n# escape=`\nFROM scratch\nADD http:/\\/127.0.0.1:9/x /x\n", "escape parser directive"},
		{"escape directive after a no-break space", "#\u00a0escape=`\nFROM scratch\nUSER 1 `\nADD http://127.0.0.1:9/x /x\n", "escape parser directive"},
		{"escape directive after a vertical tab", "#\vescape=`\nFROM scratch\nUSER 1 `\nADD http://127.0.0.1:9/x /x\n", "escape parser directive"},
		{"two CRs after a line continuation", "FROM scratch\nUSER 1 \\\r\r\nADD http://127.0.0.1:9/x /x\n", "line 2 holds a carriage return"},
		{"two CRs after an ONBUILD's continuation", "FROM scratch\nONBUILD USER 1 \\\r\r\nADD http://127.0.0.1:9/x /x\n", "line 2 holds a carriage return"},
		{"backtick escape in a flag", "# escape=`\nFROM scratch\nADD --chown=0` http://127.0.0.1:9/x a /x\n", "escape parser directive"},
		{"backslash escape in a flag", "# escape=`\nFROM scratch\nADD --chown=0\\ a [\"http\\u003a\\/\\/127.0.0.1:9/x\", \"/x\"]\n", "escape parser directive"},
		{"JSON array followed by a word", "FROM scratch\nADD [\"http\\u003a\\/\\/127.0.0.1:9/x\", \"/x\"] x\n", "line 2: ADD"},
		{"heredoc reading with a line made too long", "FROM scratch\nCOPY <<CMD /x\nADD http://127.0.0.1:9/x /x\n#" + strings.Repeat("<<", 32000) + "\nCMD\n", "line 3: ADD"},
	} {
		add, err := remoteAdd([]byte(tc.df))
		got := fmt.Sprintf("line %d: ADD %s %s", add.line, add.src, add.reason)
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: %.200q: %s, want %q", tc.name, tc.df, got, tc.want)
		}
	}
}

// What the engine builds is the canonical form of what was checked: one
// instruction per line, no comments or directives, heredocs kept; it reads
// back to the same instructions.
func TestCanonicalDockerfile(t *testing.T) {
	df := "# syntax=docker/dockerfile:1\r\nFROM busybox AS b\r\n# a comment \\\r\nRUN echo a \\\r\n  # inside\r\n  b\r\nCOPY <<EOF /x\r\nhello\r\nEOF\r\nADD --chown=1:1 [\"a b\", \"/c\"]\r\n"
	p, err := parseDockerfile([]byte(df))
	if err != nil {
		t.Fatal(err)
	}
	got, err := canonical(p)
	want := "FROM busybox AS b\nRUN echo a   b\nCOPY <<EOF /x\nhello\r\nEOF\nADD --chown=1:1 [\"a b\", \"/c\"]\n"
	if err != nil || string(got) != want {
		t.Errorf("canonical: %q (%v), want %q", got, err, want)
	}
	p, _ = parseDockerfile([]byte("FROM scratch\nRUN echo \\\\\n"))
	if _, err := canonical(p); err == nil || !strings.Contains(err.Error(), "line 2: the instruction ends in \\") {
		t.Errorf("an instruction ending in the escape: %v", err)
	}
}

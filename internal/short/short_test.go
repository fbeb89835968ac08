package short

import (
	"strings"
	"testing"
)

func TestSHA(t *testing.T) {
	for in, want := range map[string]string{
		"0123456789abcdef0123456789abcdef01234567": "0123456",
		"0123456":  "0123456",
		"abc":      "abc",
		"":         "",
		"01234567": "0123456",
	} {
		if got := SHA(in); got != want {
			t.Errorf("SHA(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestID(t *testing.T) {
	const img = "4f2b9c0d1e3a5b7c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e"
	for in, want := range map[string]string{
		"sha256:" + img:                     "4f2b9c0d1e3a",
		img:                                 "4f2b9c0d1e3a",
		"0f5e8a7c9b2d4e6f8a0b1c2d3e4f5a6b":  "0f5e8a7c9b2d", // an ECS task ID
		"sha256:abc":                        "abc",
		"4f2b9c0d1e3a":                      "4f2b9c0d1e3a",
		"bluemed-production-backend-blue-1": "bluemed-production-backend-blue-1", // a name passes whole
		"":                                  "",
	} {
		if got := ID(in); got != want {
			t.Errorf("ID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLine(t *testing.T) {
	for in, want := range map[string]string{
		"exit status 1": "exit status 1",
		"  \nbuild failed: step 3\n  at main.go\n": "build failed: step 3",
		"one\r\ntwo": "one\r",
		"":           "",
	} {
		if got := Line(in); got != want {
			t.Errorf("Line(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCut(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{{"abc", 3, "abc"}, {"abcd", 3, "ab…"}, {"héllo wörld", 6, "héllo…"}, {"", 2, ""}} {
		if got := Cut(c.in, c.n); got != c.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// A Tail quotes what a terminal would have shown last: no blank lines, no
// colour codes, a progress line's last state, each line cut short.
func TestTail(t *testing.T) {
	var tl Tail
	if tl.String() != "" || tl.Lines() != nil {
		t.Fatalf("empty tail: %q", tl.String())
	}
	long := strings.Repeat("é", 200)
	for _, l := range []string{"first", "  ", "10%\r50%\r100%", "\x1b[1;31merror\x1b[0m: bad", "", long, "done\r"} {
		tl.Add(l)
	}
	want := "error: bad | " + strings.Repeat("é", TailWidth-1) + "… | done"
	if got := tl.String(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	tl.Reset()
	if tl.String() != "" {
		t.Fatal("Reset kept lines")
	}
	if got := TailOf("a\nb\n\nc\nd\n"); got != "b | c | d" {
		t.Fatalf("TailOf = %q", got)
	}
}

// Terminal keeps colours and drops what would act on the terminal.
func TestTerminal(t *testing.T) {
	for in, want := range map[string]string{
		"plain\ttext":                                 "plain\ttext",
		"\x1b[1;31merror\x1b[0m: bad":                 "\x1b[1;31merror\x1b[0m: bad",
		"ok\b\b\bFAILED":                              "okFAILED",
		"copy\x1b]52;c;aGk=\x07 this":                 "copy this",
		"\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\": "link",
		"up\x1bM a row\x1b[2A\x1b[Kx\rbell\a":         "up a rowxbell",
		"\u009b31m C1":                                "31m C1",
	} {
		if got := Terminal(in); got != want {
			t.Errorf("Terminal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0 services", 1: "1 service", 2: "2 services"} {
		if got := Count(n, "service"); got != want {
			t.Errorf("Count(%d, service) = %q, want %q", n, got, want)
		}
	}
}

package docker

import (
	"fmt"
	"testing"
)

// A FROM among a heredoc's lines is a stage to an engine without heredocs:
// its base is one whose triggers are read.
func TestAttackHeredocHidingAFrom(t *testing.T) {
	for _, tc := range []struct{ df, want string }{
		{"FROM scratch\nCOPY <<CMD /x\nFROM evil:1\nCMD\n", "[{3 evil:1}]"},
		{"ARG B=evil\nFROM scratch AS s\nRUN <<-EOF\n\tFROM $B:2 AS t\n\tFROM s\n\tFROM t\nEOF\n", "[{4 evil:2}]"},
		{"FROM busybox\nCOPY <<EOF /x\nhello\nEOF\n", "[{1 busybox}]"},
		{"FROM busybox\nRUN echo hi\n", "[]"},
	} {
		p, err := parseDockerfile([]byte(tc.df))
		if err != nil {
			t.Fatalf("%q: %v", tc.df, err)
		}
		uses, err := heredocFreeUses(p, nil)
		got := []string{}
		for _, u := range uses {
			if u.what == "FROM " {
				got = append(got, fmt.Sprintf("{%d %s}", u.line, u.ref))
			}
		}
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("%q: %v (%v), want %s", tc.df, got, err, tc.want)
		}
	}
}

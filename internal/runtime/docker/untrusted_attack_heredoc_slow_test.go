package docker

import (
	"strings"
	"testing"
)

// The canonical form keeps heredocs, whose lines an engine without them reads
// as instructions: a heredoc line ending in \ is refused, as an instruction
// ending in \ is.
func TestAttackHeredocLineEndingInTheEscape(t *testing.T) {
	for _, df := range []string{
		"FROM scratch\nCOPY <<EOF /x\na \\\nb\nEOF\n",
		"FROM scratch\nCOPY <<EOF /x\na \\ \t\r\nb\r\nEOF\r\n",
		"FROM scratch\nCOPY <<EOF /x\n" + strings.Repeat("a \\\n", 1000) + "EOF\n",
		"FROM scratch\nCOPY <<\"EOF\\\\\" /x\na\nEOF\\\nRUN true\n",
		"FROM scratch\nRUN <<-EOF\n\techo \\\n\tEOF\n",
	} {
		p, err := parseDockerfile([]byte(df))
		if err != nil {
			t.Fatalf("%q: %v", df, err)
		}
		if _, err := canonical(p); err == nil || !strings.Contains(err.Error(), "line 2: a heredoc line ends in \\") {
			t.Errorf("%q: %v, want it refused", df, err)
		}
	}
	p, _ := parseDockerfile([]byte("FROM scratch\nCOPY <<EOF /x\necho a \\\\\nEOF\n"))
	if _, err := canonical(p); err == nil {
		t.Errorf("an escaped escape at a heredoc line's end: passed, want it refused (engines differ on it too)")
	}
}

package lines

import (
	"slices"
	"strings"
	"testing"
)

// Lines come out whole however they are written: in parts, several in one
// write, with CRLF ends, without an end until Flush; a line over MaxLine in
// parts of MaxLine.
func TestWriterPassesWholeLines(t *testing.T) {
	var got []string
	w := &Writer{F: func(l string) { got = append(got, l) }}
	for _, p := range []string{"first pa", "rt\nsecond\r\n\nthi", "rd", "\nlast"} {
		if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if want := []string{"first part", "second", "third"}; !slices.Equal(got, want) {
		t.Fatalf("before Flush: %q, want %q", got, want)
	}
	w.Flush()
	w.Flush()
	if want := []string{"first part", "second", "third", "last"}; !slices.Equal(got, want) {
		t.Fatalf("after Flush: %q, want %q", got, want)
	}
	got = nil
	w.Write([]byte(strings.Repeat("x", MaxLine+10) + "\n"))
	if len(got) != 2 || len(got[0]) != MaxLine || got[1] != strings.Repeat("x", 10) {
		t.Fatalf("a line over MaxLine: %d parts", len(got))
	}
}

// Package short gives the short forms of long identifiers that messages,
// logs and variables show: a commit as git abbreviates it, an image,
// container or task ID as Docker does; of a command's output, the last
// lines a failure message quotes (Tail); and of text others wrote, what may
// be printed of it (Printable, Terminal); and a count with its noun (Count). It is a leaf: it imports nothing
// of cutover, so any package can use it.
package short

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// SHA is a commit's first 7 characters, as `git log --oneline` shows it
// (CUTOVER_SHORT_SHA); shorter input passes unchanged.
func SHA(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

// ID shortens a hexadecimal ID (an image or container ID, with or without
// its "sha256:" prefix, an ECS task ID) to its first 12 digits, as `docker
// ps` shows it. The prefix is always dropped; anything that is not all hex
// digits (a container or task name) otherwise passes unchanged.
func ID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 && isHex(id) {
		return id[:12]
	}
	return id
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Line is the first line of a message, trimmed: what a one-line summary,
// a table cell or a stored reason shows of it.
func Line(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// Cut is s cut to at most n characters, an ellipsis marking the cut.
func Cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:max(n-1, 0)]) + "…"
}

// Tail keeps the last lines of a command's output for its failure message
// ("last output: a | b | c"): blank lines are skipped, each line is what a
// terminal would show of it (what follows its last carriage return), made
// Printable, masked (Mask) and cut to a width. The zero Tail keeps
// TailLines lines of TailWidth characters. It is safe for concurrent use.
type Tail struct {
	// Mask, if set, is applied to each line once its colour codes are
	// stripped and before it is cut: a secret with a colour change inside
	// it is whole only then, and a cut inside it would leave a prefix no
	// later masking finds.
	Mask  func(string) string
	mu    sync.Mutex
	lines []string
}

// TailLines and TailWidth bound what a Tail quotes.
const (
	TailLines = 3
	TailWidth = 120
)

// ansiEscape are the terminal's escape sequences: CSI (colours, cursor
// moves), OSC (title, clipboard, hyperlinks; ended by BEL or ST) and the
// two-character ones (ESC M, ESC 7).
var ansiEscape = regexp.MustCompile(`\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]*[0-~])`)

// Printable is s on one line, without terminal escape sequences and control
// characters (a tab or a line break is a space): backspaces, bells, C1
// codes and what an escape sequence leaves would move a terminal's cursor or
// act on it where text from a build or a command (a quote of its output, a
// Dockerfile's line in an error) is printed.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n':
			return ' '
		case unicode.IsControl(r):
			return -1
		}
		return r
	}, ansiEscape.ReplaceAllString(s, ""))
}

// sgr is a colour or text-style sequence (SGR: ESC [ params m), the only
// escape sequence Terminal keeps.
var sgr = regexp.MustCompile(`^\x1b\[[0-9;:]*m`)

// Terminal is s as a terminal may be given it when someone else wrote it (a
// pull request's command, an app): its colours kept, every other escape
// sequence (cursor moves, OSC titles, hyperlinks and clipboard writes) and
// control character (backspace, bell, carriage return) dropped, tabs kept.
func Terminal(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\t' }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if m := sgr.FindString(s[i:]); m != "" {
			b.WriteString(m)
			i += len(m)
			continue
		}
		if loc := ansiEscape.FindStringIndex(s[i:]); loc != nil && loc[0] == 0 {
			i += loc[1]
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == '\t' || !unicode.IsControl(r) {
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}

// Add keeps line as the newest.
func (t *Tail) Add(line string) {
	if i := strings.LastIndexByte(line, '\r'); i >= 0 && strings.TrimSpace(line[i+1:]) != "" {
		line = line[i+1:]
	}
	line = strings.TrimSpace(Printable(line))
	if t.Mask != nil {
		line = t.Mask(line)
	}
	if line == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, Cut(line, TailWidth))
	if len(t.lines) > TailLines {
		t.lines = t.lines[len(t.lines)-TailLines:]
	}
}

// Reset forgets the lines kept.
func (t *Tail) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = nil
}

// Lines are the lines kept, oldest first (nil for none).
func (t *Tail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.lines)
}

// String is the lines kept joined by " | ", "" for none.
func (t *Tail) String() string { return strings.Join(t.Lines(), " | ") }

// TailOf is what a Tail keeps of text's lines, joined by " | ".
func TailOf(text string) string {
	var t Tail
	for _, line := range strings.Split(text, "\n") {
		t.Add(line)
	}
	return t.String()
}

// Count is n with its noun, singular for one: "1 service", "2 services".
// The plural adds "s" (cutover's nouns: service, environment, check,
// container, network, volume).
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

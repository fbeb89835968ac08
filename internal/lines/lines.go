// Package lines turns what a tool writes (a build's progress, a command's
// output) into whole lines. It is a leaf: it imports nothing of cutover.
package lines

import (
	"bytes"
	"sync"
)

// MaxLine is the longest line a Writer passes on whole; a longer one is
// passed on in parts of this length (as the host's reading of a command's
// output caps it).
const MaxLine = 1024 * 1024

// Writer passes each line written to it to F once the line is whole, without
// its line end: a writer may send a line in parts (the engine sends one
// longer than its log messages, 16 KiB, so), and a secret across a part's
// end would be masked in neither. Empty lines are not passed on. Flush
// passes on what is left. It is safe for concurrent use.
type Writer struct {
	F    func(string)
	mu   sync.Mutex
	part []byte
}

func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.part = append(w.part, p...)
	for {
		end, next := bytes.IndexByte(w.part, '\n'), 1
		switch {
		case end < 0 && len(w.part) < MaxLine:
			return len(p), nil
		case end < 0 || end > MaxLine:
			end, next = MaxLine, 0
		}
		if line := bytes.TrimSuffix(w.part[:end], []byte("\r")); len(line) > 0 {
			w.F(string(line))
		}
		w.part = w.part[end+next:]
	}
}

// Flush passes on the last line, if it had no line end.
func (w *Writer) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.part) > 0 {
		w.F(string(w.part))
	}
	w.part = nil
}

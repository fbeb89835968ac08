package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that every error is a Problems
// whose entries all carry a line, or a single problem (a file-level or syntax error).
func FuzzParse(f *testing.F) {
	for _, path := range []string{"testdata/bluemed/cutover.yaml", "testdata/errors/many.yaml", "testdata/errors/aliases.yaml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("cutover.yaml", data)
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			_ = c.Environments // a valid config must be usable
			for _, e := range c.Environments {
				e.Strategy.TrafficSteps()
			}
			return
		}
		var ps Problems
		if !errors.As(err, &ps) {
			t.Fatalf("error is %T, not Problems: %v", err, err)
		}
		if len(ps) == 0 {
			t.Fatal("empty Problems returned as an error")
		}
		if len(ps) == 1 {
			return
		}
		for _, p := range ps {
			if p.Line <= 0 {
				t.Fatalf("problem without a line among several: %s", p)
			}
		}
	})
}

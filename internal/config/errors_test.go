package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
)

// TestErrorsGolden parses each testdata/errors/NAME.yaml (with filesystem checks relative to
// testdata/errors) and compares the error text with NAME.golden.
func TestErrorsGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseDir("cutover.yaml", "testdata/errors", data)
			if err == nil {
				t.Fatal("no error")
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error is %T, not Problems: %v", err, err)
			}
			for _, p := range ps {
				if p.Line == 0 && len(ps) > 1 {
					t.Errorf("problem without a line: %s", p)
				}
			}
			golden(t, strings.TrimSuffix(in, ".yaml")+".golden", []byte(err.Error()+"\n"))
		})
	}
}

// A missing cutover.yaml suggests `cutover init` only where there is a
// compose file to write it from, naming that file.
func TestLoadMissingFile(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "cutover.yaml"))
	if err == nil || !strings.Contains(err.Error(), "does not exist (write one") || strings.Contains(err.Error(), "init") {
		t.Fatalf("without a compose file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("services: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(filepath.Join(dir, "cutover.yaml"))
	if err == nil || !strings.Contains(err.Error(), "does not exist (run `cutover init --compose compose.yaml`") {
		t.Fatalf("beside compose.yaml: %v", err)
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "cutover.yaml", Line: 14, Col: 5, Path: "services.backend.health.interval", Message: `"2" is not a duration (write "2s")`},
			`cutover.yaml:14:5: services.backend.health.interval: "2" is not a duration (write "2s")`},
		{Problem{File: "cutover.yaml", Message: "the file is empty"}, "cutover.yaml: the file is empty"},
		{Problem{Path: "services.web.port", Message: "missing"}, "services.web.port: missing"},
		{Problem{File: "c.yaml", Line: 3, Message: "malformed YAML"}, "c.yaml:3: malformed YAML"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

// TestEveryPhaseInOneRun: an unknown key, a value of the wrong shape and a semantic
// problem are all reported by one parse, and a value set aside for its shape is not
// reported a second time as missing.
func TestEveryPhaseInOneRun(t *testing.T) {
	y := "version: 1\nproject: shop\nservices:\n  web:\n    image: web:1\n    port: 70000\n    colour: blue\n    desired_count: many\nenvironments:\n  staging: { listen: { port: abc } }\n"
	_, err := Parse("cutover.yaml", []byte(y))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %T %v, want Problems", err, err)
	}
	want := []string{
		"cutover.yaml:6:5: services.web.port: 70000 is out of range",
		`cutover.yaml:7:5: services.web.colour: unknown key "colour"`,
		`cutover.yaml:8:20: services.web.desired_count: "many" is not a whole number`,
		`cutover.yaml:10:30: environments.staging.listen.port: "abc" is not a whole number`,
	}
	if len(ps) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(ps[i].String(), w) {
			t.Errorf("problem %d: %s\nwant prefix %s", i, ps[i], w)
		}
	}
}

// Malformed YAML is reported at the line where the broken construct
// starts: yaml.v3's parser counts its lines from zero (its scanner from
// one), so "did not find expected ',' or '}'" for a flow mapping opened on
// line 5 said line 4 (found by a newcomer's audit).
func TestMalformedYAMLNamesTheLineItStarts(t *testing.T) {
	head := "version: 1\nproject: shop\nservices:\n"
	for _, c := range []struct {
		body string
		line int
	}{
		{"  web:\n    image: {web:1\n    port: 80\n", 5},  // flow mapping opened on line 5
		{"  web:\n    image: [web:1\n    port: 80\n", 5},  // flow sequence opened on line 5
		{"  - web\n  web: 1\n", 4},                        // block sequence starting on line 4
		{"  web:\n    image: web:1\n\tport: 80\n", 5},     // a tab: the scalar it continues, on line 5
		{"  web:\n    image: \"web:1\n    port: 80\n", 5}, // an unclosed quote opened on line 5
		{"  web:\n    image: web:1\n  port: 80: 1\n", 6},  // mapping values not allowed, on line 6
	} {
		_, err := Parse("c.yaml", []byte(head+c.body))
		if err == nil {
			t.Fatalf("%q: parsed", c.body)
		}
		want := fmt.Sprintf("c.yaml:%d: malformed YAML", c.line)
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", c.body, err, want)
		}
	}
}

// A file in an encoding the YAML parser does not read is reported as that,
// with what to do, rather than as malformed YAML ("control characters are
// not allowed"); UTF-8 with a byte order mark and UTF-16 with one are read.
func TestEncodingIsNamedNotCalledMalformed(t *testing.T) {
	text := "version: 1\nproject: shop # café\nservices:\n  web: { image: web:1, port: 80 }\nenvironments:\n  staging: { branch: main }\n"
	utf16 := func(bigEndian bool) []byte {
		var b []byte
		for _, u := range utf16.Encode([]rune(text)) {
			if bigEndian {
				b = append(b, byte(u>>8), byte(u))
			} else {
				b = append(b, byte(u), byte(u>>8))
			}
		}
		return b
	}
	for _, ok := range [][]byte{
		[]byte(text),
		append([]byte("\xef\xbb\xbf"), text...),
		append([]byte("\xff\xfe"), utf16(false)...),
		append([]byte("\xfe\xff"), utf16(true)...),
	} {
		if c, err := Parse("c.yaml", ok); err != nil || c.Project != "shop" {
			t.Errorf("%q: %v", ok[:4], err)
		}
	}
	latin1 := []byte(strings.Replace(text, "é", "\xe9", 1))
	for _, c := range []struct {
		data []byte
		want string
	}{
		{utf16(false), "c.yaml: the file is UTF-16 (without a byte order mark), not UTF-8 (save it as UTF-8)"},
		{utf16(true), "c.yaml: the file is UTF-16 (without a byte order mark), not UTF-8 (save it as UTF-8)"},
		{append([]byte("\xff\xfe\x00\x00"), 'v', 0, 0, 0), "c.yaml: the file is UTF-32, not UTF-8 (save it as UTF-8)"},
		{latin1, "c.yaml:2:20: byte 0xe9 is not UTF-8: the file is in another encoding, such as Latin-1 or Windows-1252 (save it as UTF-8)"},
		{[]byte("version: 1\x00\n"), "c.yaml:1:11: a NUL byte: the file is not UTF-8 text (save it as UTF-8)"},
	} {
		if _, err := Parse("c.yaml", c.data); err == nil || err.Error() != c.want {
			t.Errorf("%q: %v, want %q", c.data[:min(len(c.data), 8)], err, c.want)
		}
	}
}

// Find takes cutover.yaml from a parent directory up to the repository's
// root, as git finds its repository from a subdirectory, and never from
// above that root.
func TestFindLooksUpToTheRepositoryRoot(t *testing.T) {
	outer := t.TempDir()
	repo := filepath.Join(outer, "repo")
	sub := filepath.Join(repo, "backend", "src")
	for _, d := range []string{sub, filepath.Join(repo, ".git")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string) {
		if err := os.WriteFile(p, []byte("version: 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(outer, "cutover.yaml")) // another project's, above the repository
	if got := Find(sub, "cutover.yaml"); got != "cutover.yaml" {
		t.Errorf("no cutover.yaml in the repository: Find = %q, want the name unchanged (not the one above the repository's root)", got)
	}
	write(filepath.Join(repo, "cutover.yaml"))
	if got, want := Find(sub, "cutover.yaml"), filepath.Join(repo, "cutover.yaml"); got != want {
		t.Errorf("from %s: Find = %q, want %q", sub, got, want)
	}
	if got := Find(repo, "cutover.yaml"); got != "cutover.yaml" {
		t.Errorf("in the directory that has it: Find = %q, want the name as given", got)
	}
	write(filepath.Join(repo, "backend", "cutover.yaml"))
	if got, want := Find(sub, "cutover.yaml"), filepath.Join(repo, "backend", "cutover.yaml"); got != want {
		t.Errorf("the nearest: Find = %q, want %q", got, want)
	}
	if got := Find(sub, "configs/cutover.yaml"); got != "configs/cutover.yaml" {
		t.Errorf("a path, not a bare name: Find = %q, want it unchanged", got)
	}
}

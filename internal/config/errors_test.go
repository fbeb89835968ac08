package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "cutover.yaml"))
	if err == nil || !strings.Contains(err.Error(), "does not exist (run `cutover init`") {
		t.Fatalf("err = %v", err)
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

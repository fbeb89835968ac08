package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExportCloudFormationWritesTemplates(t *testing.T) {
	example, err := filepath.Abs("../../examples/bluemed/cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cf")
	code, out, errOut := run(t, "", "-f", example, "export", "cloudformation", "--dir", dir, "--format", "json", "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res struct {
		Templates []struct {
			Path      string
			Stack     string
			Resources int
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	if len(res.Templates) != 4 || res.Templates[0].Stack != "bluemed-shared" {
		t.Fatalf("templates = %+v", res.Templates)
	}
	for _, tpl := range res.Templates {
		b, err := os.ReadFile(tpl.Path)
		if err != nil || !json.Valid(b) || tpl.Resources == 0 {
			t.Errorf("%s: %v, valid JSON %v, %d resources", tpl.Path, err, json.Valid(b), tpl.Resources)
		}
	}
}

func TestExportCloudFormationMistakes(t *testing.T) {
	example, err := filepath.Abs("../../examples/bluemed/cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-f", example, "export", "cloudformation", "--output", "cf", "--dir", "other"}, `--output cf and --dir other name two directories: give one`},
		{[]string{"-f", example, "export", "cloudformation", "--format", "toml"}, `--format: "toml" is not a template format (use yaml or json)`},
		{[]string{"-f", filepath.Join(t.TempDir(), "missing.yaml"), "export", "cloudformation", "--dir", t.TempDir()}, "missing.yaml"},
	} {
		code, _, errOut := run(t, "", c.args...)
		if code != 1 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
			t.Errorf("%v: exit %d, stderr %q; want one or two lines containing %q", c.args, code, errOut, c.want)
		}
	}
}

// `--output DIR`, as the issue and the AWS habit write it, names the directory.
func TestExportCloudFormationOutputDir(t *testing.T) {
	example, err := filepath.Abs("../../examples/bluemed/cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cf")
	code, out, errOut := run(t, "", "-f", example, "export", "cloudformation", "--output", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, name := range []string{"shared.yaml", "app-staging.yaml", "app-production.yaml", "pipeline.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil || !strings.Contains(out, filepath.Join(dir, name)) {
			t.Errorf("%s: %v (stdout %q)", name, err, out)
		}
	}
}

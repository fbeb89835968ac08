package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func run(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	if dir != "" {
		t.Chdir(dir)
	}
	var out, errb bytes.Buffer
	code := Execute(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateReportsEveryProblemWithFileLineAndField(t *testing.T) {
	dir := t.TempDir()
	bad := "version: 1\nproject: shop\nservices:\n  web:\n    image: web:1\n    port: 80\n    health: { interval: 2 }\n    helth: {}\n"
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, dir, "validate")
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	// Shape, unknown keys and semantics in one run: the file also has no environments.
	want := `cutover: cutover.yaml:1:1: environments: no environments (add at least one, such as staging: { branch: develop })
cutover.yaml:7:25: services.web.health.interval: "2" is not a duration (write "2s")
cutover.yaml:8:5: services.web.helth: unknown key "helth" (did you mean "health"?)
`
	if errOut != want {
		t.Fatalf("stderr:\n%s\nwant:\n%s", errOut, want)
	}
	code, out, _ = run(t, "", "validate", "--output", "json")
	var res struct {
		Valid    bool
		Problems []struct {
			Line int
			Path string
		}
	}
	if code != 1 || json.Unmarshal([]byte(out), &res) != nil || res.Valid || len(res.Problems) != 3 || res.Problems[2].Path != "services.web.helth" {
		t.Fatalf("json: exit %d %s", code, out)
	}
}

func TestValidateExample(t *testing.T) {
	code, out, errOut := run(t, "../../examples/bluemed", "validate", "-o", "json")
	if code != 0 || !strings.Contains(out, `"valid": true`) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestInitWritesAValidFileAndRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	compose := "services:\n  api:\n    image: api:1\n    ports: [\"3001:3001\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, dir, "init"); code != 0 {
		t.Fatalf("init: %s", errOut)
	}
	first, _ := os.ReadFile("cutover.yaml")
	if code, _, errOut := run(t, "", "validate"); code != 0 {
		t.Fatalf("generated file does not validate: %s\n%s", errOut, first)
	}
	code, _, errOut := run(t, "", "init")
	if code != 1 || !strings.Contains(errOut, "--force") {
		t.Fatalf("second init: exit %d, %q", code, errOut)
	}
	if after, _ := os.ReadFile("cutover.yaml"); !bytes.Equal(first, after) {
		t.Fatal("a refused init changed the file")
	}
	if code, _, errOut := run(t, "", "init", "--force"); code != 0 {
		t.Fatalf("init --force: %s", errOut)
	}
}

func TestInitWithoutComposeFileNamesIt(t *testing.T) {
	code, _, errOut := run(t, t.TempDir(), "init")
	if code != 1 || !strings.Contains(errOut, "docker-compose.yml") || strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	if _, err := os.Stat("cutover.yaml"); err == nil {
		t.Fatal("a failed init wrote cutover.yaml")
	}
}

func TestSchemaIsJSON(t *testing.T) {
	code, out, _ := run(t, "", "schema")
	var v map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["$schema"] == nil {
		t.Fatalf("exit %d: %.200s", code, out)
	}
}

func TestUsageMistakesAreOneLine(t *testing.T) {
	for _, args := range [][]string{{"up"}, {"bogus"}, {"version", "--nope"}, {"version", "-o", "yaml"}} {
		code, out, errOut := run(t, "", args...)
		if code != 1 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.HasPrefix(errOut, "cutover: ") {
			t.Errorf("%v: exit %d stdout %q stderr %q", args, code, out, errOut)
		}
	}
	code, out, _ := run(t, "", "version", "-o", "json")
	if code != 0 || !strings.Contains(out, `"version"`) {
		t.Fatalf("version json: %d %s", code, out)
	}
}

// Every command that takes an execution ID says the same of one that does
// not exist, in one line: which ID, and the command that lists them.
func TestUnknownExecutionSaysHowToListThem(t *testing.T) {
	inSmallProject(t)
	want := "cutover: there is no execution x-nope (`cutover executions` lists them)\n"
	for _, cmd := range []string{"logs", "cancel", "approve", "reject", "retry", "executions"} {
		code, out, errOut := run(t, "", cmd, "x-nope")
		if code != 1 || out != "" || errOut != want {
			t.Errorf("cutover %s x-nope: exit %d stdout %q stderr %q, want %q", cmd, code, out, errOut, want)
		}
	}
}

// inSmallProject runs the test in a directory with a small cutover.yaml (one
// image, environments staging and production) and its own CUTOVER_HOME.
func inSmallProject(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CUTOVER_HOME", t.TempDir())
	yaml := "version: 1\nproject: shop\nservices:\n  web:\n    image: web:1\n    port: 80\n" +
		"environments:\n  staging: { branch: main }\n  production: { branch: main, listen: { port: 8090 } }\n"
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
}

// From a subdirectory of the repository, commands read the repository's
// cutover.yaml, as git finds its repository; -f names a file as given.
func TestCommandsFindCutoverYAMLFromASubdirectory(t *testing.T) {
	inSmallProject(t)
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(root, "backend", "src")
	for _, d := range []string{sub, filepath.Join(root, ".git")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(sub)
	want := filepath.Join(root, "cutover.yaml") + " is valid: project shop, 1 service, 2 environments\n"
	if code, out, errOut := run(t, "", "validate"); code != 0 || out != want {
		t.Errorf("validate from %s: exit %d stdout %q stderr %q, want %q", sub, code, out, errOut, want)
	}
	if code, _, errOut := run(t, "", "validate", "-f", "cutover.yaml"); code != 1 || !strings.Contains(errOut, "cutover.yaml does not exist") {
		t.Errorf("validate -f cutover.yaml from %s: exit %d stderr %q, want the file named as given, missing", sub, code, errOut)
	}
}

// --watch takes an optional interval, so it must follow "=": `--watch 2`
// is --watch (every 2s) and the environment "2". When no environment is
// called that, the error says how to write the interval.
func TestWatchIntervalAfterASpaceSaysToWriteEquals(t *testing.T) {
	inSmallProject(t)
	envs := `cutover.yaml has none named %q (environments: production, staging)`
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--watch", "2"}, `--watch 2: write --watch=2s (its interval follows "="): after a space, 2 is read as an environment, and ` + fmt.Sprintf(envs, "2")},
		{[]string{"status", "--watch", "1.5"}, `--watch 1.5: write --watch=1.5s (its interval follows "="): after a space, 1.5 is read as an environment, and ` + fmt.Sprintf(envs, "1.5")},
		{[]string{"status", "--watch", "500ms"}, `--watch 500ms: write --watch=500ms (its interval follows "="): after a space, 500ms is read as an environment, and ` + fmt.Sprintf(envs, "500ms")},
		{[]string{"status", "--watch", "prod"}, `cutover.yaml: no environment named "prod" (environments: production, staging)`},
		{[]string{"status", "2"}, `cutover.yaml: no environment named "2" (environments: production, staging)`},
		// An interval of its own: the number is only an unknown environment.
		{[]string{"status", "--watch=1s", "3"}, `cutover.yaml: no environment named "3" (environments: production, staging)`},
		{[]string{"status", "--watch=2s", "3"}, `cutover.yaml: no environment named "3" (environments: production, staging)`},
		// The number before a bare --watch was not meant as its interval.
		{[]string{"status", "3", "--watch"}, `cutover.yaml: no environment named "3" (environments: production, staging)`},
		{[]string{"status", "--watch=soon"}, `invalid argument "soon" for "--watch" flag: "soon" is not an interval: write one such as --watch=2s or --watch=500ms (see ` + "`cutover status --help`" + `)`},
	} {
		code, out, errOut := run(t, "", c.args...)
		if code != 1 || out != "" || errOut != "cutover: "+c.want+"\n" {
			t.Errorf("cutover %s: exit %d stdout %q stderr %q, want %q", strings.Join(c.args, " "), code, out, errOut, c.want)
		}
	}
}

// A wrong number of arguments names the arguments the command takes, as
// exactArgs does, not cobra's "accepts at most 1 arg(s), received 2".
func TestWrongArgumentCountNamesTheArguments(t *testing.T) {
	inSmallProject(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "production", "staging"}, "cutover status needs at most one argument, ENV (got 2 arguments; see `cutover status --help`)"},
		{[]string{"executions", "x-1", "x-2"}, "cutover executions needs at most one argument, EXECUTION (got 2 arguments; see `cutover executions --help`)"},
		{[]string{"publish-static"}, "cutover publish-static needs DIR (got 0 arguments; see `cutover publish-static --help`)"},
		{[]string{"deploy"}, "cutover deploy needs ENV (got 0 arguments; see `cutover deploy --help`)"},
	} {
		code, out, errOut := run(t, "", c.args...)
		if code == 0 || out != "" || errOut != "cutover: "+c.want+"\n" {
			t.Errorf("cutover %s: exit %d stdout %q stderr %q, want %q", strings.Join(c.args, " "), code, out, errOut, c.want)
		}
	}
}

// A state directory that cannot be one is refused before anything runs,
// naming where it came from (--home, CUTOVER_HOME) and what is wrong.
func TestBadHomeNamesItsFlagOrVariable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env  string
		args []string
		want string
	}{
		{"", []string{"--home", filepath.Join(file, "x"), "status"},
			"cutover: --home " + file + "/x: cannot be created: " + file + " is not a directory (pass --home a directory cutover can create or write)\n"},
		{"", []string{"executions", "--home", file},
			"cutover: --home " + file + ": is not a directory (pass --home a directory cutover can create or write)\n"},
		{filepath.Join(file, "x"), []string{"token", "list"},
			"cutover: CUTOVER_HOME=" + file + "/x: cannot be created: " + file + " is not a directory (set CUTOVER_HOME to a directory cutover can create or write, or pass --home)\n"},
	} {
		t.Setenv("CUTOVER_HOME", c.env)
		code, out, errOut := run(t, "", c.args...)
		if code != 1 || out != "" || errOut != c.want {
			t.Errorf("CUTOVER_HOME=%s cutover %s: exit %d stdout %q stderr %q, want %q", c.env, strings.Join(c.args, " "), code, out, errOut, c.want)
		}
	}
	if fi, err := os.Stat(file); err != nil || fi.IsDir() || fi.Size() != 0 {
		t.Fatalf("the file given as --home changed: %v %v", fi, err)
	}
}

// With --output json, an error is one JSON object on stderr (a script
// parses it); the exit code still says it failed.
func TestJSONOutputErrorsAreJSON(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"executions", "x-nope", "--output", "json", "-f", filepath.Join(dir, "missing.yaml")},
		{"bogus", "-o", "json"},
		{"version", "--nope", "--output=json"},
		{"status", "-o", "json", "-f", filepath.Join(dir, "missing.yaml")},
	} {
		code, out, errOut := run(t, "", args...)
		var e struct{ Error string }
		if code != 1 || out != "" || json.Unmarshal([]byte(errOut), &e) != nil || e.Error == "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d stdout %q stderr %q", args, code, out, errOut)
		}
	}
}

// A backquoted word in a flag's usage is taken by --help (and the man
// pages) for the flag's value placeholder: `--to cutover history ENV`.
func TestNoFlagUsageHasABackquote(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				t.Errorf("cutover %s --%s: a backquote in its usage becomes its placeholder in --help: %q", c.CommandPath(), f.Name, f.Usage)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(&globals{}))
}

package cli

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

const completionProject = `version: 1
project: shop
services:
  web: { image: "web:1", port: 8080 }
environments:
  staging: { branch: develop, listen: { port: 18080 } }
  production: { branch: main, listen: { port: 18090 } }
`

// Shell completion offers cutover.yaml's environments and the project's
// executions, and never creates a store to do it.
func TestCompletionOffersEnvironmentsAndExecutions(t *testing.T) {
	dir, home := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(completionProject), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, dir, "__complete", "--home", home, "deploy", "")
	if code != 0 {
		t.Fatalf("__complete deploy: %d %s", code, errs)
	}
	for _, want := range []string{"production\tlocal, branch main", "staging\tlocal, branch develop", ":4"} {
		if !strings.Contains(out, want) {
			t.Errorf("deploy completion lacks %q:\n%s", want, out)
		}
	}
	// A second argument gets nothing (and no file names).
	if _, out, _ := run(t, dir, "__complete", "--home", home, "deploy", "staging", ""); strings.Contains(out, "production") {
		t.Errorf("second argument completed as an environment:\n%s", out)
	}
	// No store yet: nothing offered, nothing created.
	if _, out, _ := run(t, dir, "__complete", "--home", home, "cancel", ""); strings.Contains(out, "x-") {
		t.Errorf("executions offered without a store:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(home, "cutover.db")); !os.IsNotExist(err) {
		t.Fatalf("completion created a store (%v)", err)
	}

	st, err := store.Open(context.Background(), filepath.Join(home, "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"x-20261203-100000-aaaa", "x-20261203-110000-bbbb"} {
		x := store.Execution{ID: id, Project: "shop", Pipeline: "main", Trigger: "push", Branch: "develop",
			Commit: strings.Repeat(string(rune('a'+i)), 40), Status: store.ExecutionSucceeded}
		if err := st.CreateExecution(context.Background(), x); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	for _, cmd := range []string{"cancel", "logs", "approve", "retry", "executions"} {
		_, out, _ := run(t, dir, "__complete", "--home", home, cmd, "")
		for _, want := range []string{"x-20261203-100000-aaaa\tdevelop aaaaaaa", "x-20261203-110000-bbbb\tdevelop bbbbbbb"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s completion lacks %q:\n%s", cmd, want, out)
			}
		}
	}
}

// `cutover man DIR` writes a page per command, from the commands themselves.
func TestManPagesAreGeneratedFromTheCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	if code, _, errs := run(t, "", "man", dir); code != 0 {
		t.Fatalf("man: %s", errs)
	}
	for page, want := range map[string]string{
		"cutover.1":              ".TH \"CUTOVER\" \"1\"",
		"cutover-deploy.1":       `\fB--image\fP`,
		"cutover-rollback.1":     "rollback",
		"cutover-token-create.1": `\fB--role\fP`,
	} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("page %s: %v", page, err)
			continue
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("page %s lacks %q", page, want)
		}
	}
}

// Every flag the systemd units pass exists on the command they run, so a
// unit cannot drift from the CLI.
func TestSystemdUnitsUseRealCommandsAndFlags(t *testing.T) {
	units, _ := filepath.Glob("../../packaging/systemd/*.service")
	if len(units) != 2 {
		t.Fatalf("units: %v, want cutover.service and cutover-proxy.service", units)
	}
	flag := regexp.MustCompile(`--[a-z-]+`)
	for _, u := range units {
		f, err := os.Open(u)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		found := false
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "ExecStart=/usr/local/bin/cutover ")
			if !ok {
				continue
			}
			found = true
			var words []string
			for _, w := range strings.Fields(line) {
				if strings.HasPrefix(w, "-") {
					break
				}
				words = append(words, w)
			}
			code, help, errs := run(t, "", append(words, "--help")...)
			if code != 0 {
				t.Errorf("%s: `cutover %s` is not a command: %s", u, strings.Join(words, " "), errs)
				continue
			}
			for _, fl := range flag.FindAllString(line, -1) {
				if !strings.Contains(help, fl+" ") {
					t.Errorf("%s: `cutover %s` has no flag %s", u, strings.Join(words, " "), fl)
				}
			}
		}
		f.Close()
		if !found {
			t.Errorf("%s has no ExecStart running /usr/local/bin/cutover", u)
		}
	}
}

// `make image` builds a FROM scratch image whose cutover runs (as a non-root
// user) and reads a cutover.yaml mounted into it.
func TestImageRuns(t *testing.T) {
	testenv.RequireDocker(t)
	bin := testenv.CutoverBinary(t)
	tag := "cutover-test/cutover:" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	build := exec.Command("../../scripts/image.sh", bin, tag)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { testenv.RemoveImages(tag) })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(completionProject), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	out, err := exec.Command("docker", "run", "--rm", "--network", "none", "-v", dir+":/work:ro", tag, "validate", "--output", "json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "shop") {
		t.Fatalf("docker run %s validate: %v\n%s", tag, err, out)
	}
	out, err = exec.Command("docker", "image", "inspect", "--format", "{{.Config.User}}", tag).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "65532:65532" {
		t.Fatalf("image user: %q %v, want the non-root 65532:65532", out, err)
	}
	// FROM scratch: nothing but cutover and the CA bundle, no shell to run.
	if out, err := exec.Command("docker", "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", tag, "-c", "true").CombinedOutput(); err == nil {
		t.Fatalf("the image has a shell: %s", out)
	}
}

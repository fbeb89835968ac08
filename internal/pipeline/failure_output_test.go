package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/cutoverdev/cutover/internal/mask"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// A command that fails (a compile error in build.commands, a failing
// action) says why in the failure summary: its error quotes its last lines
// of output, as masked in the log (a secret it printed is not in it), each
// cut short, and says where the rest is. On the host and in an image alike.
func TestFailedCommandQuotesItsLastOutputMasked(t *testing.T) {
	e, _, out := newEngine(t)
	image := busyboxImage(t, e.Runtime)
	long := strings.Repeat("x", 300)
	// The secret printed last but one, a long line, then the cause.
	script := `echo compiling; echo "token $API_TOKEN"; echo ` + long + `; echo './main.go:5:2: undefined: foo' >&2; exit 2`
	for _, where := range []string{"host", "image"} {
		project := "fo-" + where + "-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
		removeImages(t, project)
		inImage, inWhat := "", ""
		if where == "image" {
			inImage, inWhat = ", image: "+image, " in image "+image
		}
		yaml := commandYAML(project, "compile", 18380, inImage, script)
		repo, commit := testenv.GitRepo(t, "develop", map[string]string{"cutover.yaml": yaml})
		x, err := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "develop", Commit: commit})
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		want := fmt.Sprintf("compile: command %q%s failed with exit code 2 (last output: token *** | %s… | ./main.go:5:2: undefined: foo; all of it is in `cutover logs %s`)",
			script, inWhat, long[:119], x.ID)
		if where == "image" {
			// The engine keeps a container's stdout and stderr apart: their lines may come in another order.
			got, _, _ := strings.Cut(x.Error, "(last output: ")
			if wantHead, _, _ := strings.Cut(want, "(last output: "); got != wantHead || !strings.Contains(x.Error, "undefined: foo") ||
				!strings.Contains(x.Error, "token ***") || !strings.HasSuffix(x.Error, "all of it is in `cutover logs "+x.ID+"`)") {
				t.Fatalf("%s: %s %q\nwant %q in some order\n%s", where, x.Status, x.Error, want, out)
			}
		} else if x.Status != "failed" || x.Error != want {
			t.Fatalf("%s: %s %q\nwant %q\n%s", where, x.Status, x.Error, want, out)
		}
		var stages []StageState
		_ = json.Unmarshal(x.Stages, &stages)
		whole, _ := json.Marshal(x)
		if !strings.Contains(stages[0].Actions[0].Summary, "undefined: foo") || strings.Contains(string(whole)+out.String(), "s3cr3t-value") {
			t.Fatalf("%s: the action's summary lacks the cause, or the secret leaked: %s\n%s", where, whole, out)
		}
	}
}

// The lines a failure quotes are the log's, masked: were they taken before
// masking, the error would carry the secret to wherever errors go unmasked.
func TestFailureQuotesTheMaskedLines(t *testing.T) {
	r := maskingRun(t)
	o := r.commandOutput("compile")
	for _, l := range []string{"", "token s3cr3t-value", "\x1b[31m./main.go:5:2: undefined: foo\x1b[0m", "  "} {
		o.line(l)
	}
	want := "command \"make\" failed with exit code 1 (last output: token *** | ./main.go:5:2: undefined: foo; all of it is in `cutover logs x-1`)"
	if err := o.failed(`command "make"`, 1); err.Error() != want {
		t.Fatalf("got  %s\nwant %s", err, want)
	}
	if err := r.commandOutput("quiet").failed(`command "true"`, 3); err.Error() != "command \"true\" failed with exit code 3 (its output is in `cutover logs x-1`)" {
		t.Fatalf("without output: %s", err)
	}
	// A colour change inside the secret hides it from the log's masking
	// (a terminal shows it whole there too); the quote, stripped of colour
	// codes, is masked again.
	o = r.commandOutput("colour")
	o.line("token s3cr\x1b[0m3t-value")
	o.line("token s3cr3t\x1b[1m-value")
	if err := o.failed(`command "make"`, 1); strings.Contains(err.Error(), "s3cr3t-value") {
		t.Fatalf("the quote holds the secret: %s", err)
	}
}

// The quote is cut to its width after the colour codes are stripped: a
// secret with a colour change inside it, which the log's masking misses,
// must be masked before that cut, or the cut leaves a prefix of it that no
// masking finds afterwards.
func TestFailureQuoteMasksAColouredSecretBeforeCuttingIt(t *testing.T) {
	r := maskingRun(t)
	o := r.commandOutput("colour")
	// Stripped, the line is 110 x and the secret: 122 characters, cut to
	// 119 and "…" inside the secret.
	o.line(strings.Repeat("x", 110) + "s3cr\x1b[0m3t-value")
	if err := o.failed(`command "make"`, 1); strings.Contains(err.Error(), "s3cr3t-v") {
		t.Fatalf("the quote holds most of the secret: %s", err)
	}
}

// maskingRun is a run of execution x-1 whose secret API_TOKEN is
// s3cr3t-value, with a store to log to.
func maskingRun(t *testing.T) *run {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &run{e: &Engine{Store: st, Log: slog.New(slog.DiscardHandler)}, exec: store.Execution{ID: "x-1"},
		secrets: &Secrets{masker: mask.New(map[string]string{"API_TOKEN": "s3cr3t-value"})}}
}

// The quote reaches a terminal (`cutover executions` prints the error as
// it is) from a command an untrusted pull request may write: it holds no
// control character, or the output could move the cursor back over the
// row and rewrite its status (backspaces, ESC M), set the terminal's title
// or clipboard (OSC), or hide a link's address (OSC 8).
func TestFailureQuoteHoldsNoControlCharacters(t *testing.T) {
	o := maskingRun(t).commandOutput("spoof")
	o.line(strings.Repeat("\b", 40) + "succeeded \x07")
	o.line("\x1b]8;;https://evil.example/\x07see the fix\x1b]8;;\x07 \x1b]52;c;ZWNobyBoaQ==\x07")
	o.line("\x1bMapproved by alice\x1b7\x1b8 \u009b2K\x7f")
	err := o.failed(`command "make"`, 1)
	if i := strings.IndexFunc(err.Error(), unicode.IsControl); i >= 0 {
		t.Fatalf("the quote holds control character %q: %q", err.Error()[i:i+1], err)
	}
}

// On the real engine: a command in an image prints a line longer than the
// engine's log messages (16 KiB), with a secret across the boundary. The
// engine sends the line in two parts; were each taken for a line, the
// secret would be in neither whole, and its end would reach the log and
// the failure's quote unmasked.
func TestLongLineInAnImageIsMaskedWhole(t *testing.T) {
	e, _, out := newEngine(t)
	image := busyboxImage(t, e.Runtime)
	project := "fl-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	// 16380 x, then the secret: its first 4 bytes end the first 16 KiB.
	script := `head -c 16380 /dev/zero | tr '\0' x; echo "$API_TOKEN"; exit 2`
	yaml := commandYAML(project, "long", 18381, ", image: "+image, script)
	repo, commit := testenv.GitRepo(t, "develop", map[string]string{"cutover.yaml": yaml})
	x, err := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "develop", Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := e.Store.ListLogs(context.Background(), x.ID, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, l := range logs {
		all += l.Line + "\n"
	}
	if strings.Contains(x.Error, "3t-value") || strings.Contains(all, "3t-value") || strings.Contains(out.String(), "3t-value") {
		t.Fatalf("the end of the secret is unmasked: error %q\nlog lines %d, ends %q", x.Error, len(logs), all[max(len(all)-200, 0):])
	}
}

// commandYAML is a cutover.yaml whose one action, name, runs script (in an
// image when inImage is ", image: IMAGE"), with the secret API_TOKEN.
func commandYAML(project, name string, port int, inImage, script string) string {
	return fmt.Sprintf(`version: 1
project: %s
services:
  web: { image: "example.invalid/web:1", port: 8080 }
environments:
  staging: { branch: develop, listen: { port: %d } }
pipeline:
  secrets: { names: [API_TOKEN] }
  stages:
    - name: build
      actions:
        - { name: %s, kind: command%s, commands: [%q] }
`, project, port, name, inImage, script)
}

package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// A commit whose cutover.yaml points out of the checkout (.., a symbolic
// link committed to the repository) fails before anything runs, with an
// error naming the field; nothing outside the workspace is read.
func TestCommitCannotReachOutsideItsWorkspace(t *testing.T) {
	e, calls, _ := newEngine(t)
	outside := t.TempDir()
	_ = os.WriteFile(filepath.Join(outside, "secrets.env"), []byte("API_TOKEN=stolen-from-outside\n"), 0o644)
	_ = os.MkdirAll(filepath.Join(outside, "reports"), 0o755)
	_ = os.WriteFile(filepath.Join(outside, "reports", "r.xml"), []byte(`<testsuite name="outside"><testcase name="x"/></testsuite>`), 0o644)
	project := "pa-" + strings.ReplaceAll(t.Name()[len(t.Name())-6:], "/", "")
	base, _ := gitRepo(t, "paths")
	cfg, _ := os.ReadFile(filepath.Join(base, "cutover.yaml"))
	for _, tc := range []struct{ name, from, to, field string }{
		{"context", "context: hello", "context: ../../../../../../" + outside, "services.hello.build.context"},
		{"reports", `reports: ["reports/*.xml"]`, `reports: ["../../../../../../` + outside + `/reports/*.xml"]`, "reports[0]"},
		{"secrets file", "secrets: { names: [API_TOKEN] }", "secrets: { file: ../../../../../../" + outside + "/secrets.env, names: [API_TOKEN] }", "pipeline.secrets.file"},
		{"linked reports", `reports: ["reports/*.xml"]`, `reports: ["linked/*.xml"]`, "reports[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(string(cfg), tc.from, tc.to, 1)
			if y == string(cfg) {
				t.Fatalf("%q not in the test config", tc.from)
			}
			y = strings.Replace(y, "project: paths", "project: "+project, 1)
			_ = os.WriteFile(filepath.Join(base, "cutover.yaml"), []byte(y), 0o644)
			_ = os.Remove(filepath.Join(base, "linked"))
			if err := os.Symlink(filepath.Join(outside, "reports"), filepath.Join(base, "linked")); err != nil {
				t.Fatal(err)
			}
			testenv.Git(t, base, "add", "-A")
			testenv.Git(t, base, "commit", "-qm", "escape via "+tc.name)
			x, err := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: base, Branch: "develop"})
			if err != nil {
				t.Fatal(err)
			}
			if x.Status != "failed" || !strings.Contains(x.Error, tc.field) || !strings.Contains(x.Error, "inside the workspace") {
				t.Fatalf("want a failure naming %s, got %s: %s", tc.field, x.Status, x.Error)
			}
			if strings.Contains(string(x.Stages), "outside") || len(*calls) != 0 {
				t.Fatalf("something ran: %s, deploys %v", x.Stages, *calls)
			}
		})
	}
}

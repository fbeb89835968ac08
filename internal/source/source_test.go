package source

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// testRepo is a real repository built by the git CLI:
//
//	root ── second ── third ────────── merge (main)
//	           └── feature (develop) ──┘
//
// plus a tag v1 on second.
type testRepo struct {
	dir                                  string
	root, second, third, feature, merged string
}

func newTestRepo(t *testing.T) testRepo {
	t.Helper()
	r := testRepo{dir: filepath.Join(t.TempDir(), "repo")}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = r.dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.com",
			"GIT_COMMITTER_NAME=Ada Lovelace", "GIT_COMMITTER_EMAIL=ada@example.com",
			"GIT_AUTHOR_DATE=2025-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2025-01-02T03:04:05Z")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(name, content string) {
		t.Helper()
		path := filepath.Join(r.dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(msg string) string {
		t.Helper()
		run("add", "-A")
		run("commit", "--quiet", "-m", msg)
		return run("rev-parse", "HEAD")
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run("init", "--quiet", "--initial-branch=main")
	write("backend/main.go", "package main\n")
	write("frontend/index.html", "<h1>v1</h1>\n")
	r.root = commit("Initial commit")
	write("backend/main.go", "package main // v2\n")
	write("docs/a file with spaces.md", "hello\n")
	r.second = commit("Backend v2\n\nWith a body\nof two lines.")
	run("tag", "-a", "-m", "release 1", "v1")
	run("checkout", "--quiet", "-b", "develop")
	write("frontend/index.html", "<h1>v2</h1>\n")
	r.feature = commit("Frontend v2")
	run("checkout", "--quiet", "main")
	run("mv", "docs/a file with spaces.md", "docs/renamed.md")
	r.third = commit("Rename the doc")
	run("merge", "--quiet", "--no-ff", "-m", "Merge develop", "develop")
	r.merged = run("rev-parse", "HEAD")
	return r
}

func TestResolve(t *testing.T) {
	r, ctx := newTestRepo(t), t.Context()
	for branch, want := range map[string]string{
		"main": r.merged, "develop": r.feature, "": r.merged, "refs/heads/develop": r.feature, "refs/tags/v1": r.second,
	} {
		got, err := Resolve(ctx, r.dir, branch)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %s, %v; want %s", branch, got, err, want)
		}
	}
	if got, err := Resolve(ctx, "file://"+r.dir, "develop"); err != nil || got != r.feature {
		t.Errorf("Resolve(file URL) = %s, %v; want %s", got, err, r.feature)
	}
	_, err := Resolve(ctx, r.dir, "release")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "release") || !strings.Contains(err.Error(), "develop, main") {
		t.Errorf("unknown branch: %v; want ErrNotFound naming it and the branches", err)
	}
	t.Log(err)
}

func TestCheckoutBranchHead(t *testing.T) {
	r, ctx := newTestRepo(t), t.Context()
	dir := filepath.Join(t.TempDir(), "executions", "x-1")
	ws, err := Checkout(ctx, r.dir, r.feature, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Workspace{Dir: dir, Repo: r.dir, Commit: r.feature, ShortSHA: r.feature[:7], Branch: "develop",
		Message: "Frontend v2", Author: "Ada Lovelace <ada@example.com>", CommittedAt: ws.CommittedAt,
		ChangedFiles: []string{"frontend/index.html"}}
	if !reflect.DeepEqual(ws, want) {
		t.Fatalf("Checkout =\n%+v\nwant\n%+v", ws, want)
	}
	if got := ws.CommittedAt.UTC().Format("2006-01-02T15:04:05Z"); got != "2025-01-02T03:04:05Z" {
		t.Errorf("CommittedAt = %s", got)
	}
	assertFile(t, dir, "frontend/index.html", "<h1>v2</h1>\n")
	assertFile(t, dir, "backend/main.go", "package main // v2\n")
	if head := gitOut(t, dir, "rev-parse", "HEAD"); head != r.feature {
		t.Errorf("HEAD = %s, want %s", head, r.feature)
	}
	if err := ws.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("workspace still there after Remove: %v", err)
	}
	if err := ws.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

// Commits that are no branch head, the root commit and a merge: each at
// exactly its content, with the files it changed.
func TestCheckoutAnyCommit(t *testing.T) {
	r, ctx := newTestRepo(t), t.Context()
	cases := []struct {
		name, commit, branch, subject string
		files                         []string
		doc                           string // file present in the docs directory
	}{
		{"root", r.root, "", "Initial commit", []string{"backend/main.go", "frontend/index.html"}, ""},
		{"middle", r.second, "", "Backend v2", []string{"backend/main.go", "docs/a file with spaces.md"}, "a file with spaces.md"},
		{"rename", r.third, "", "Rename the doc", []string{"docs/a file with spaces.md", "docs/renamed.md"}, "renamed.md"},
		{"merge", r.merged, "main", "Merge develop", []string{"frontend/index.html"}, "renamed.md"},
		{"abbreviated", r.second[:9], "", "Backend v2", []string{"backend/main.go", "docs/a file with spaces.md"}, "a file with spaces.md"},
		{"upper case", strings.ToUpper(r.third), "", "Rename the doc", []string{"docs/a file with spaces.md", "docs/renamed.md"}, "renamed.md"},
		{"branch name", "develop", "develop", "Frontend v2", []string{"frontend/index.html"}, "a file with spaces.md"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ws, err := Checkout(ctx, r.dir, c.commit, filepath.Join(t.TempDir(), "ws"))
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Remove()
			if !strings.HasPrefix(ws.Commit, strings.ToLower(c.commit)) && c.name != "branch name" {
				t.Errorf("Commit = %s, want %s", ws.Commit, c.commit)
			}
			if ws.Branch != c.branch || ws.Subject() != c.subject || !reflect.DeepEqual(ws.ChangedFiles, c.files) {
				t.Errorf("Branch %q, subject %q, files %q; want %q, %q, %q",
					ws.Branch, ws.Subject(), ws.ChangedFiles, c.branch, c.subject, c.files)
			}
			docs, _ := os.ReadDir(filepath.Join(ws.Dir, "docs"))
			var names []string
			for _, d := range docs {
				names = append(names, d.Name())
			}
			if c.doc == "" && len(names) != 0 || c.doc != "" && !reflect.DeepEqual(names, []string{c.doc}) {
				t.Errorf("docs/ holds %q, want %q", names, c.doc)
			}
		})
	}
	ws, err := Checkout(ctx, r.dir, r.second, filepath.Join(t.TempDir(), "ws"))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Remove()
	if ws.Message != "Backend v2\n\nWith a body\nof two lines." {
		t.Errorf("Message = %q", ws.Message)
	}
	// Only the commit and its parent were fetched, not the history.
	if n := gitOut(t, ws.Dir, "rev-list", "--count", "HEAD"); n != "2" {
		t.Errorf("workspace has %s commits of history, want 2 (shallow fetch)", n)
	}
}

func TestCheckoutFileURL(t *testing.T) {
	r := newTestRepo(t)
	ws, err := Checkout(t.Context(), "file://"+r.dir, r.third, filepath.Join(t.TempDir(), "ws"))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Remove()
	assertFile(t, ws.Dir, "docs/renamed.md", "hello\n")
}

// `cutover run` in a clone passes ".": git runs in the workspace, so the
// path must be made absolute first.
func TestCheckoutRelativePath(t *testing.T) {
	r := newTestRepo(t)
	dir := filepath.Join(t.TempDir(), "ws")
	t.Chdir(r.dir)
	ws, err := Checkout(t.Context(), ".", "main", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Remove()
	if ws.Commit != r.merged || ws.Repo != r.dir {
		t.Fatalf("Checkout(.) = %s from %s; want %s from %s", ws.Commit, ws.Repo, r.merged, r.dir)
	}
	t.Chdir(filepath.Join(r.dir, "backend"))
	_, err = Resolve(t.Context(), ".", "main")
	if err == nil || !strings.Contains(err.Error(), "inside "+r.dir) {
		t.Fatalf("Resolve(subdirectory): %v; want one naming the repository around it", err)
	}
	t.Log(err)
}

func TestCheckoutErrors(t *testing.T) {
	r, ctx := newTestRepo(t), t.Context()
	notRepo := t.TempDir()
	existing := t.TempDir()
	cases := []struct {
		name, repo, commit string
		want               []string
		notFound           bool
	}{
		{"unknown commit", r.dir, strings.Repeat("ab", 20), []string{strings.Repeat("ab", 20), r.dir, "push it"}, true},
		{"unknown abbreviation", r.dir, "abcdef0", []string{"abcdef0", "not found"}, true},
		{"not a commit or branch", r.dir, "release/1", []string{`"release/1"`, "develop, main"}, true},
		{"not a repository", notRepo, r.second, []string{notRepo, "not a git repository"}, false},
		{"missing path", filepath.Join(notRepo, "nope"), r.second, []string{"nope", "does not exist"}, false},
		{"option-like repo", "--upload-pack=touch /tmp/x", r.second, []string{"starts with '-'"}, false},
		{"no commit", r.dir, "", []string{"no commit"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ws")
			_, err := Checkout(ctx, c.repo, c.commit, dir)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if c.notFound != errors.Is(err, ErrNotFound) {
				t.Errorf("errors.Is(err, ErrNotFound) = %v", !c.notFound)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("failed checkout left %s behind", dir)
			}
		})
	}
	if _, err := Checkout(ctx, r.dir, r.second, existing); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("existing dir: %v", err)
	}
	if _, err := Resolve(ctx, notRepo, "main"); err == nil || !strings.Contains(err.Error(), "not a git repository") {
		t.Errorf("Resolve(not a repo): %v", err)
	}
}

// Credentials in a URL never reach an error. The address is a closed port
// on 127.0.0.1, so git fails at once without leaving the machine.
func TestCredentialsRedacted(t *testing.T) {
	repo := "https://deploy-bot:s3cr3t-token@127.0.0.1:1/org/app.git"
	for name, call := range map[string]func() error{
		"Resolve": func() error { _, err := Resolve(t.Context(), repo, "main"); return err },
		"Checkout": func() error {
			_, err := Checkout(t.Context(), repo, "main", filepath.Join(t.TempDir(), "ws"))
			return err
		},
	} {
		err := call()
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		t.Log(err)
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "deploy-bot") {
			t.Errorf("%s error shows the credentials: %v", name, err)
		}
		if !strings.Contains(err.Error(), "https://***@127.0.0.1:1/org/app.git") {
			t.Errorf("%s error does not name the (redacted) repository: %v", name, err)
		}
	}
	if got := redact("fatal: unable to access 'https://u:p@h/x/': refused; ssh://git@h/x"); got !=
		"fatal: unable to access 'https://***@h/x/': refused; ssh://***@h/x" {
		t.Errorf("redact = %q", got)
	}
}

func TestGitMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Resolve(t.Context(), ".", "main")
	if !errors.Is(err, ErrGitMissing) || !strings.Contains(err.Error(), "install git") {
		t.Fatalf("without git: %v", err)
	}
}

func TestCancelled(t *testing.T) {
	r := newTestRepo(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dir := filepath.Join(t.TempDir(), "ws")
	if _, err := Checkout(ctx, r.dir, r.second, dir); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled checkout: %v, want context.Canceled", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cancelled checkout left %s behind", dir)
	}
}

// Executions check out concurrently, each into its own directory.
func TestConcurrentCheckouts(t *testing.T) {
	r, ctx := newTestRepo(t), t.Context()
	base := t.TempDir()
	commits := []string{r.root, r.second, r.third, r.feature, r.merged, r.second}
	var wg sync.WaitGroup
	errs := make([]error, len(commits))
	got := make([]Workspace, len(commits))
	for i, c := range commits {
		wg.Go(func() {
			got[i], errs[i] = Checkout(ctx, r.dir, c, filepath.Join(base, "x", string(rune('a'+i))))
		})
	}
	wg.Wait()
	for i, c := range commits {
		if errs[i] != nil || got[i].Commit != c {
			t.Errorf("checkout %d: %s, %v; want %s", i, got[i].Commit, errs[i], c)
		}
		got[i].Remove()
	}
}

func assertFile(t *testing.T, dir, name, want string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil || string(b) != want {
		t.Errorf("%s = %q, %v; want %q", name, b, err, want)
	}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := git(t.Context(), dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// A password with an unencoded '@' (user:p@ss@host) is taken out whole:
// git reads up to the first '@' and says "http://ss@host" itself, and an
// error naming the repository must not show the rest either.
func TestSecretRedactTakesOutAPasswordWithAnAt(t *testing.T) {
	for in, want := range map[string]string{
		"https://deploy:p@ssw0rd@127.0.0.1:1/org/app.git": "https://***@127.0.0.1:1/org/app.git",
		"fatal: unable to access 'http://ssw0rd@h/x/'":    "fatal: unable to access 'http://***@h/x/'",
		"https://h/x@y ssh://git@h/x":                     "https://h/x@y ssh://***@h/x",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

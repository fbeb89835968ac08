package testenv

// The end-to-end harness shared by e2e/ and internal/cli: the cutover binary
// (built once per test process), free ports, and the example monorepo copied
// into a fresh git repository, as a user's repository.

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/enginelock"
)

const modulePath = "github.com/cutoverdev/cutover"

// ModuleRoot returns the directory of cutover's go.mod, searched upwards from
// the working directory (a test runs in its package's directory).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			first := ""
			if sc.Scan() {
				first = strings.TrimSpace(sc.Text())
			}
			f.Close()
			if first == "module "+modulePath {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
//
// It is chosen below the kernel's ephemeral range (ip_local_port_range), at
// random: a port from that range (what "127.0.0.1:0" gives) is also where
// every outgoing connection of the machine takes its local port, so between
// this call and the test's own bind any test's client connection could take
// it (seen in CI: "test_port 127.0.0.1:43352 is in use by another process").
// A port is not handed out twice by one test process.
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := portRange()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
	}
	for range 200 {
		p := lo + rand.IntN(hi-lo)
		if ports.given[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		ports.given[p] = true
		return p
	}
	t.Fatalf("no free port of 127.0.0.1 between %d and %d after 200 tries", lo, hi)
	return 0
}

var ports struct {
	mu    sync.Mutex
	given map[int]bool
}

// portRange is [lo, hi): ports below the ephemeral range, above the
// well-known and commonly configured ones.
func portRange() (lo, hi int) {
	lo, hi = 20000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if first, err := strconv.Atoi(f[0]); err == nil && first > 12000 {
				hi = first
				lo = min(lo, first-10000)
			}
		}
	}
	return lo, hi
}

var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// CutoverBinary returns a static cutover binary built from this module, once
// per test process. A package that uses it removes it with RunTests.
func CutoverBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			binary.err = err
			return
		}
		if binary.dir, err = os.MkdirTemp("", "cutover-bin-"); err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(binary.dir, "cutover")
		build := exec.Command("go", "build", "-o", binary.path, "./cmd/cutover")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build ./cmd/cutover: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// RunTests runs the package's tests (m.Run) and then removes the binary that
// CutoverBinary built; TestMain calls it and exits with its result.
func RunTests(m *testing.M) int {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	return code
}

// ExampleRepo copies examples/bluemed into a fresh git repository on branch
// (a temp dir, `git init`, one commit), the way a user starts a project from
// it, and returns its directory. edit, when not nil, changes the files before
// the commit. Build outputs (bin/) are not copied.
func ExampleRepo(t testing.TB, branch string, edit func(dir string)) string {
	t.Helper()
	src := filepath.Join(ModuleRoot(t), "examples", "bluemed")
	dir := filepath.Join(t.TempDir(), "bluemed")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if d.Name() == "bin" || d.Name() == ".git" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		if strings.HasSuffix(d.Name(), ".cutover.yaml") && strings.HasPrefix(d.Name(), ".") {
			return nil // a test's leftover from an older harness
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copying the example: %v", err)
	}
	if edit != nil {
		edit(dir)
	}
	Git(t, dir, "init", "-q", "-b", branch)
	Git(t, dir, "add", ".")
	Git(t, dir, "commit", "-q", "-m", "bluemed, copied from cutover's examples")
	return dir
}

// Replace replaces, in the file at path, each old string with its new one
// (pairs of old, new). A missing old string fails the test, so a change of
// the example is noticed rather than silently not applied.
func Replace(t testing.TB, path string, pairs ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s no longer contains %q", path, pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// CLI runs the cutover binary on one project's cutover.yaml and home.
type CLI struct{ Bin, File, Home string }

// Command is `cutover ARGS -f File --home Home`, with CUTOVER_HOME set too. A
// grandchild that keeps its output open (the proxy) does not hang the caller.
func (c CLI) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(c.Bin, append(args, "-f", c.File, "--home", c.Home)...)
	cmd.Env = append(os.Environ(), "CUTOVER_HOME="+c.Home)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs the command to its end and returns its stdout and stderr.
func (c CLI) Run(args ...string) (stdout, stderr string, err error) {
	cmd := c.Command(args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// RemoveProject removes every container (in any state) and image labelled
// with the project, which a test may have left behind, and returns how many
// containers it found. The images go with their untagged parents, the
// builder's steps (see RemoveImages).
func RemoveProject(project string) int {
	label := "label=dev.cutover.project=" + project
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", label).Output()
	containers := strings.Fields(string(out))
	if len(containers) > 0 {
		_ = exec.Command("docker", append([]string{"rm", "-f"}, containers...)...).Run()
	}
	removeImages(func() []string {
		out, _ := exec.Command("docker", "images", "-q", "--filter", label).Output()
		return strings.Fields(string(out))
	})
	return len(containers)
}

// RemoveImages removes the images named (IDs or references) that exist,
// with their untagged parents, as cutover's own removals do.
func RemoveImages(refs ...string) {
	removeImages(func() []string {
		out, _ := exec.Command("docker", append([]string{"image", "inspect", "--format", "{{.ID}}"}, refs...)...).Output()
		return strings.Fields(string(out))
	})
}

// removeImages removes the images list returns until it returns none, or
// for up to 10 s: an image stays while a container that an engine is still
// removing uses it, or while an image of the list built on it is there.
//
// The untagged parents go too (`docker rmi` without --no-prune): left, they
// were thousands of dangling images after a run of the tests. They can be
// the classic builder's cache steps that a build running in another test
// package has just picked as the parent of its next step, which then fails
// with "unable to find image sha256:…" (a CI run failed so), so the removal
// holds the engine's image lock exclusively, as cutover's own removals do
// (internal/enginelock), and waits for the builds in flight. If it cannot
// have the lock in 3 minutes, the images go without their parents.
func removeImages(list func() []string) {
	ids := list()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	flags := []string{"rmi", "-f"}
	if unlock, err := enginelock.Lock(ctx, dockerHost(), true, slog.Default()); err == nil {
		defer unlock()
	} else {
		flags = append(flags, "--no-prune")
	}
	for deadline := time.Now().Add(10 * time.Second); len(ids) > 0 && time.Now().Before(deadline); ids = list() {
		if exec.Command("docker", append(flags, ids...)...).Run() != nil {
			time.Sleep(200 * time.Millisecond)
		}
	}
}

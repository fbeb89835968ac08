package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/moby/moby/client"
)

const exampleDir = "examples/bluemed"

// harness drives the real cutover binary on a clone of the repository
// whose example has a unique project, free ports and production timings
// of seconds, so the benchmark never touches what a person or a test runs.
type harness struct {
	tmp     string // binary, clone and CUTOVER_HOME
	bin     string
	home    string
	clone   string
	file    string // the clone's examples/bluemed/cutover.yaml
	project string
	port    int // production listener
}

// findRoot walks up from the working directory to the repository root.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, exampleDir, "cutover.yaml")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it from the cutover repository (no examples/bluemed/cutover.yaml above the working directory)")
		}
		dir = parent
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// newHarness builds cutover, clones the repository at HEAD and commits the
// private configuration on main: that commit is the one measured.
func newHarness(ctx context.Context, root string) (*harness, error) {
	tmp, err := os.MkdirTemp("", "cutover-bench-pipeline-")
	if err != nil {
		return nil, err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	h := &harness{tmp: tmp, bin: filepath.Join(tmp, "cutover"), home: filepath.Join(tmp, "home"),
		clone: filepath.Join(tmp, "repo"), project: "benchpipe" + hex.EncodeToString(b[:])}
	h.file = filepath.Join(h.clone, exampleDir, "cutover.yaml")

	build := exec.CommandContext(ctx, "go", "build", "-o", h.bin, "./cmd/cutover")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return h, fmt.Errorf("go build ./cmd/cutover: %v\n%s", err, out)
	}
	if err := h.git(ctx, root, "clone", "-q", "--local", "--no-hardlinks", root, h.clone); err != nil {
		return h, err
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return h, err
		}
	}
	h.port = ports[0]
	src, err := os.ReadFile(h.file)
	if err != nil {
		return h, err
	}
	y := string(src)
	for _, r := range [][2]string{
		{"project: bluemed", "project: " + h.project},
		{"port: 8080, test_port: 8081", fmt.Sprintf("port: %d, test_port: %d", ports[0], ports[1])},
		{"port: 8180", fmt.Sprintf("port: %d", ports[2])},
		// The example's production timings are minutes of traffic shifting,
		// bake and termination wait; seconds keep the blue/green shape while
		// the figures show the pipeline rather than those deliberate waits.
		{"traffic: Linear10PercentEvery1Minute", "linear: { percent: 50, interval: 2s }"},
		{"bake: 1m", "bake: 2s"},
		{"termination_wait: 5m", "termination_wait: 2s"},
		{"datapoints: 3 of 5 }", "datapoints: 3 of 5, period: 1s }"},
		{"threshold: 1% }", "threshold: 1%, period: 1s }"},
	} {
		if !strings.Contains(y, r[0]) {
			return h, fmt.Errorf("%s/cutover.yaml no longer contains %q; update bench/pipeline/harness.go to the example", exampleDir, r[0])
		}
		y = strings.Replace(y, r[0], r[1], 1)
	}
	if err := os.WriteFile(h.file, []byte(y), 0o644); err != nil {
		return h, err
	}
	if err := h.git(ctx, h.clone, "checkout", "-q", "-B", "main"); err != nil {
		return h, err
	}
	return h, h.git(ctx, h.clone, "commit", "-qam", "bench: unique project, ports and short production timings")
}

func (h *harness) git(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (h *harness) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.bin, append(args, "-f", h.file, "--home", h.home)...)
	// Interrupted, cutover gets the chance to tear its integration down.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	return cmd
}

// cutover runs one cutover command and returns its stdout.
func (h *harness) cutover(ctx context.Context, args ...string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd := h.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("cutover %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// measurement is what one `cutover run` left: its process times, the
// execution record, its log and the approval.
type measurement struct {
	start, end time.Time // the cutover run process
	exec       store.Execution
	stages     []pipeline.StageState
	logs       []store.LogLine
	approval   *store.Approval
}

var approvalLine = regexp.MustCompile("`cutover approve (\\S+) --comment")

// runMain runs the pipeline for the head of main and approves the gate the
// moment its request appears in the live log.
func (h *harness) runMain(ctx context.Context) (measurement, error) {
	var m measurement
	cmd := h.command(ctx, "run", "--kind", "push", "--branch", "main")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return m, err
	}
	var tail []string
	m.start = time.Now()
	if err := cmd.Start(); err != nil {
		return m, err
	}
	id, approveErr := "", error(nil)
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if tail = append(tail, line); len(tail) > 30 {
			tail = tail[1:]
		}
		if id == "" {
			if _, after, ok := strings.Cut(line, "execution x-"); ok {
				id = "x-" + strings.TrimSuffix(strings.Fields(after)[0], ":")
			}
		}
		if sub := approvalLine.FindStringSubmatch(line); sub != nil && m.approval == nil && approveErr == nil {
			progressf("approval requested; approving %s", sub[1])
			out, err := h.cutover(ctx, "approve", sub[1], "--comment", "bench: approved automatically", "-o", "json")
			m.approval = &store.Approval{}
			if approveErr = err; err == nil {
				approveErr = json.Unmarshal(out, m.approval)
			}
		}
	}
	runErr := cmd.Wait()
	m.end = time.Now()
	if approveErr != nil {
		return m, approveErr
	}
	if id == "" {
		return m, fmt.Errorf("cutover run: %v; no execution started:\n%s", runErr, strings.Join(tail, "\n"))
	}
	out, err := h.cutover(ctx, "executions", id, "-o", "json")
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(out, &m.exec); err != nil {
		return m, fmt.Errorf("cutover executions %s: %v", id, err)
	}
	if err := json.Unmarshal(m.exec.Stages, &m.stages); err != nil {
		return m, fmt.Errorf("execution %s stages: %v", id, err)
	}
	out, err = h.cutover(ctx, "logs", id, "-o", "json")
	if err != nil {
		return m, err
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var l store.LogLine
		if err := dec.Decode(&l); err != nil {
			return m, fmt.Errorf("cutover logs %s: %v", id, err)
		}
		m.logs = append(m.logs, l)
	}
	if runErr != nil && m.exec.Status == "succeeded" {
		return m, fmt.Errorf("cutover run: %v\n%s", runErr, strings.Join(tail, "\n"))
	}
	return m, nil
}

// cleanup removes both environments, the proxy, every container and image
// of the project, and the temp dir (clone, home, binary).
func (h *harness) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	progressf("cleaning up project %s", h.project)
	if _, err := os.Stat(h.bin); err == nil {
		if _, err := os.Stat(h.file); err == nil {
			for _, args := range [][]string{{"down", "production"}, {"down", "staging"}, {"proxy", "stop"}} {
				if _, err := h.cutover(ctx, args...); err != nil {
					progressf("cleanup: %v", err)
				}
			}
		}
	}
	if rt, err := docker.Connect(ctx); err == nil {
		if n, err := rt.RemoveTasks(ctx, docker.Labels{Project: h.project}, 0); err != nil || n > 0 {
			progressf("cleanup: removed %d containers left behind (%v)", n, err)
		}
		f := make(client.Filters).Add("label", "dev.cutover.project="+h.project)
		if imgs, err := rt.EngineClient().ImageList(ctx, client.ImageListOptions{All: true, Filters: f}); err == nil {
			for _, img := range imgs.Items {
				_, _ = rt.RemoveImage(ctx, img.ID)
			}
		}
		rt.Close()
	} else {
		progressf("cleanup: %v", err)
	}
	os.RemoveAll(h.tmp)
}

func progressf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s bench/pipeline: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

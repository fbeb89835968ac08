package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/moby/moby/client"
)

// harness drives the real cutover binary on a private copy of the example's
// cutover.yaml: a unique project name, free ports and its own CUTOVER_HOME,
// so the benchmark never touches anything a person or a test is running.
type harness struct {
	root    string // repository root
	tmp     string // binary and CUTOVER_HOME
	bin     string
	home    string
	file    string // the private cutover.yaml, beside the example's so build contexts resolve
	project string
	port    int    // production listener
	example string // the example's cutover.yaml with project and ports replaced
}

const exampleDir = "examples/bluemed"

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
			return "", errors.New("bench/deploy: run it from the cutover repository (no examples/bluemed/cutover.yaml above the working directory)")
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

// replaceOnce replaces old in s and fails when the example no longer has it.
func replaceOnce(s, old, new string) (string, error) {
	if !strings.Contains(s, old) {
		return "", fmt.Errorf("bench/deploy: %s/cutover.yaml no longer contains %q; update bench/deploy/harness.go to the example", exampleDir, old)
	}
	return strings.Replace(s, old, new, 1), nil
}

// newHarness builds cutover into a temp dir and prepares the private config.
func newHarness(ctx context.Context, root string) (*harness, error) {
	tmp, err := os.MkdirTemp("", "cutover-bench-deploy-")
	if err != nil {
		return nil, err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	h := &harness{root: root, tmp: tmp, bin: filepath.Join(tmp, "cutover"), home: filepath.Join(tmp, "home"), project: "benchdeploy" + hex.EncodeToString(b[:])}
	h.file = filepath.Join(root, exampleDir, "."+h.project+".cutover.yaml")

	build := exec.CommandContext(ctx, "go", "build", "-o", h.bin, "./cmd/cutover")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return h, fmt.Errorf("go build ./cmd/cutover: %v\n%s", err, out)
	}

	src, err := os.ReadFile(filepath.Join(root, exampleDir, "cutover.yaml"))
	if err != nil {
		return h, err
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return h, err
		}
	}
	h.port = ports[0]
	y := string(src)
	for _, r := range [][2]string{
		{"project: bluemed", "project: " + h.project},
		{"port: 8080, test_port: 8081", fmt.Sprintf("port: %d, test_port: %d", ports[0], ports[1])},
		{"port: 8180", fmt.Sprintf("port: %d", ports[2])},
	} {
		if y, err = replaceOnce(y, r[0], r[1]); err != nil {
			return h, err
		}
	}
	h.example = y
	return h, nil
}

// variant is one shape of the production environment.
type variant struct {
	allAtOnce       bool   // AllAtOnce, no bake, the given termination wait; else the example's own strategy
	terminationWait string // with allAtOnce
	fault           string // BLUEMED_FAULT for the backend ("" = a good release)
}

// writeConfig writes the private cutover.yaml for v; every later cutover
// command reads it afresh.
func (h *harness) writeConfig(v variant) error {
	y := h.example
	var err error
	if v.allAtOnce {
		for _, r := range [][2]string{
			{"traffic: Linear10PercentEvery1Minute", "traffic: AllAtOnce"},
			{"bake: 1m", "bake: 0s"},
			{"termination_wait: 5m", "termination_wait: " + v.terminationWait},
		} {
			if y, err = replaceOnce(y, r[0], r[1]); err != nil {
				return err
			}
		}
	}
	if v.fault != "" {
		const env = `env: { CORS_ORIGIN: "http://127.0.0.1:8080" }`
		if y, err = replaceOnce(y, env, strings.TrimSuffix(env, " }")+`, BLUEMED_FAULT: "`+v.fault+`" }`); err != nil {
			return err
		}
	}
	return os.WriteFile(h.file, []byte(y), 0o644)
}

// command runs cutover against the private config and home. Cancelling ctx
// interrupts it as Ctrl-C would, so it leaves its deployment reconcilable.
func (h *harness) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.bin, append(args, "-f", h.file, "--home", h.home)...)
	cmd.Dir = h.root
	cmd.Env = append(os.Environ(), "CUTOVER_HOME="+h.home)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

func (h *harness) run(ctx context.Context, args ...string) (string, error) {
	cmd := h.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("cutover %s: %v: %s", strings.Join(args, " "), err, lastLines(errb.String(), 3))
	}
	return out.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// deployRun is what one `cutover deploy production --output json` did.
type deployRun struct {
	Start, End time.Time
	Events     []event
	Result     result
}

// deploy runs `cutover deploy production` with optional --image overrides,
// streaming its JSON events to onEvent (may be nil) as they arrive.
func (h *harness) deploy(ctx context.Context, images map[string]string, onEvent func(event)) (deployRun, error) {
	args := []string{"deploy", "production", "--output", "json"}
	names := make([]string, 0, len(images))
	for name := range images {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		args = append(args, "--image", name+"="+images[name])
	}
	cmd := h.command(ctx, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return deployRun{}, err
	}
	r := deployRun{Start: time.Now()}
	if err := cmd.Start(); err != nil {
		return r, err
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		ev, res, err := parseLine(sc.Bytes())
		switch {
		case err != nil:
			continue // not ours to judge: the exit status and the result say what happened
		case res != nil:
			r.Result = *res
		default:
			r.Events = append(r.Events, ev)
			if onEvent != nil {
				onEvent(ev)
			}
		}
	}
	werr := cmd.Wait()
	r.End = time.Now()
	if r.Result.Status == "" {
		return r, fmt.Errorf("cutover %s: %v: %s", strings.Join(args[:2], " "), werr, lastLines(errb.String(), 3))
	}
	return r, nil // a rolled-back deployment exits 1 on purpose; its result says so
}

// images lists the images the example's builds made, by build id then service.
func (h *harness) images(ctx context.Context) (map[string]map[string]string, error) {
	rt, err := docker.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	res, err := rt.EngineClient().ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", "dev.cutover.project="+h.project)})
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for _, img := range res.Items {
		build, svc := img.Labels["dev.cutover.build"], img.Labels["dev.cutover.service"]
		if build == "" || svc == "" {
			continue
		}
		if out[build] == nil {
			out[build] = map[string]string{}
		}
		out[build][svc] = img.ID
	}
	return out, nil
}

// rollbackRequested returns the time the store recorded the last rollback
// request: the moment `cutover rollback` asked the controller to flip.
func (h *harness) rollbackRequested(ctx context.Context) (time.Time, error) {
	s, err := store.Open(ctx, filepath.Join(h.home, "cutover.db"))
	if err != nil {
		return time.Time{}, err
	}
	defer s.Close()
	evs, err := s.ListEvents(ctx, store.EventFilter{Project: h.project, Environment: "production"})
	if err != nil {
		return time.Time{}, err
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == "request.rollback" {
			return evs[i].Time, nil
		}
	}
	return time.Time{}, errors.New("no rollback request in the event log")
}

// cleanup removes everything the run made: the environment, the proxy,
// containers and images by label, the private config and the temp dir.
// It runs on success, failure and interrupt alike.
func (h *harness) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	progressf("cleaning up project %s", h.project)
	if _, err := os.Stat(h.bin); err == nil {
		if _, err := os.Stat(h.file); err == nil {
			if _, err := h.run(ctx, "down", "production"); err != nil {
				progressf("cleanup: %v", err)
			}
		}
		if _, err := h.run(ctx, "proxy", "stop"); err != nil {
			progressf("cleanup: %v", err)
		}
	}
	if rt, err := docker.Connect(ctx); err == nil {
		if n, err := rt.RemoveTasks(ctx, docker.Labels{Project: h.project}, 0); err != nil || n > 0 {
			progressf("cleanup: removed %d containers left behind (%v)", n, err)
		}
		if imgs, err := h.images(ctx); err == nil {
			for _, byService := range imgs {
				for _, id := range byService {
					_, _ = rt.RemoveImage(ctx, id)
				}
			}
		}
		rt.Close()
	} else {
		progressf("cleanup: %v", err)
	}
	os.Remove(h.file)
	os.RemoveAll(h.tmp)
}

func progressf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s bench/deploy: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

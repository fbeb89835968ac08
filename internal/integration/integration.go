// Package integration runs a repository's own docker-compose.yml as an
// isolated, throw-away stack on the local Docker Engine, waits for it to be
// healthy, runs HTTP checks against it on 127.0.0.1, and tears it down.
// It is the pipeline's `integration` action.
//
// Contract:
//
//   - Call Run once per execution with a Project name unique to that execution
//     (e.g. "cutover-it-<execid>"; lowercase letters, digits, '-' and '_').
//     Every engine object Run creates is named after the project
//     (network "<project>_default", volume "<project>_<name>", container
//     "<project>-<service>-1") and labelled dev.cutover.integration=<project>.
//   - Images come from Options.Images (compose service → image ID, as built by
//     the pipeline's build stage) or from the service's compose `image:`, which
//     must already be present locally: Run never pulls. A service with a
//     `build:` section and no image in Options.Images is built only when
//     Options.Root is set, and only from a context and Dockerfile that resolve
//     (symlinks included) inside Root; otherwise it is an error.
//   - Options.ExitCodeFrom names a one-shot test service (docker compose's
//     --exit-code-from): Run waits for it to exit, and its exit code decides the
//     run. A non-zero code gives an error wrapping ErrTestsFailed that quotes its
//     last log lines; the checks, if any, run after it passed.
//   - Services start in depends_on order (services with no dependency between
//     them start in parallel) and Run waits for each to be ready: healthy when
//     it has a healthcheck (compose's or the image's), else running for a
//     second (or exited with code 0). After the checks, a service that has
//     exited with an error fails the run even when every check passed. Compose host ports are ignored: every port of `ports:`,
//     and every port a Check names, is published on 127.0.0.1 on an ephemeral
//     host port, and checks only ever connect to 127.0.0.1.
//   - Run always tears everything down before it returns (containers, networks,
//     volumes; selected by the label, so even objects whose creation was
//     interrupted are found), on success, failure, timeout and cancellation of
//     ctx. Teardown uses a context detached from ctx and runs exactly once.
//     Teardown is also exported, to clean up after a crashed process.
//   - Run returns a nil error only when the stack came up and every check
//     passed. Failed checks give an error wrapping ErrChecksFailed, and the
//     Result says which check failed and why. The Result is filled as far as
//     Run got, whatever the error.
//   - Concurrent Runs with different project names are independent.
package integration

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/runtime/docker"
)

// Label marks every engine object of an integration run; its value is the project name.
const Label = "dev.cutover.integration"

// labelService names the compose service of a container.
const labelService = "dev.cutover.integration.service"

// DefaultTimeout bounds a run (start, health waits and checks) when Options.Timeout is 0.
const DefaultTimeout = 5 * time.Minute

// logLines is how many of a service's last log lines the Result keeps.
const logLines = 20

// ErrChecksFailed is wrapped by Run's error when the stack came up but at least one check failed.
var ErrChecksFailed = errors.New("integration checks failed")

// ErrTestsFailed is wrapped by Run's error when the ExitCodeFrom service exited with a non-zero code.
var ErrTestsFailed = errors.New("integration tests failed")

// Options describe one integration run.
type Options struct {
	ComposeFile string            // path of docker-compose.yml; its directory is the compose working directory
	Project     string            // unique per execution, e.g. "cutover-it-<execid>"
	Images      map[string]string // compose service → image ID to use instead of building
	Checks      []Check
	Timeout     time.Duration // whole run; 0 = DefaultTimeout
	// ExitCodeFrom is a compose service that runs the tests and exits; its exit code decides the run.
	ExitCodeFrom string
	// Root confines builds: compose services with a build section and no image
	// in Images are built when their context and Dockerfile are inside Root.
	Root string
	// WorkingDir, when set, is the compose working directory (what the
	// file's relative paths are relative to) instead of ComposeFile's
	// directory: an untrusted run reads its base's compose file from
	// outside the workspace, where the pull request's commands cannot have
	// rewritten it, and resolves it in the workspace.
	WorkingDir string
	// Name is how messages name the compose file, ComposeFile when empty:
	// an untrusted run's ComposeFile is a temporary copy, removed after it.
	Name string
	// Untrusted marks a pull request's run: the compose file is trusted (the
	// base branch's) but the workspace is not, so builds run without a
	// network and refuse ADD of a URL, bind mounts, env_file and label_file
	// must resolve (symbolic links included) inside Root, and cutover's own
	// environment is never interpolated into the compose file.
	Untrusted bool
	// OwnImages are the IDs of the images the pull request's run built,
	// which its builds may read although cutover built them
	// (docker.BuildRequest.OwnImages); the images this run builds are added.
	OwnImages []string
	Logger    *slog.Logger // nil = slog.Default()
	Output    io.Writer    // progress lines; nil = none
}

// Check is one HTTP GET against a service, through its published port on 127.0.0.1.
type Check struct {
	Service       string            // compose service name
	ContainerPort int               // the port inside the container
	Path          string            // request path; "" = "/"
	ExpectStatus  int               // 0 = 200
	ExpectBody    string            // substring the body must contain; "" = any
	ExpectHeaders map[string]string // header name → exact value
}

// CheckResult is the outcome of one check.
type CheckResult struct {
	Check
	OK     bool
	Detail string // what was requested and what came back, or why it failed
}

// ServiceResult is what Run saw of one compose service.
type ServiceResult struct {
	Healthy   bool        // reached readiness (healthy, or running without a healthcheck)
	Exited    bool        // the container had exited when Run last looked (ExitCodeFrom service)
	ExitCode  int         // its exit code, when Exited
	HostPorts map[int]int // container port → 127.0.0.1 host port
	LastLogs  []string    // the last lines it wrote, collected before teardown
}

// Result is the outcome of a run.
type Result struct {
	Checks   []CheckResult
	Services map[string]ServiceResult
}

// Run loads the compose file, starts the stack under o.Project, waits for
// it, runs the checks and tears it all down. See the package comment.
func Run(ctx context.Context, rt *docker.Runtime, o Options) (res Result, err error) {
	r, err := newRun(rt, o)
	if err != nil {
		return Result{}, err
	}
	proj, err := r.load(ctx)
	if err != nil {
		return Result{}, err
	}
	specs, err := r.plan(ctx, proj)
	if err != nil {
		return Result{}, err
	}

	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	errTimeout := fmt.Errorf("timed out after %s", timeout)
	rctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimeout)
	defer cancel()

	// From here on engine objects may exist: tear down exactly once, whatever happens.
	defer func() {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		defer ccancel()
		r.collectLogs(cctx)
		if terr := r.teardown(cctx); terr != nil {
			err = errors.Join(err, fmt.Errorf("%s: %w", r.what(), terr))
		}
		res = r.result()
	}()

	if err := r.up(rctx, proj, specs); err != nil {
		return Result{}, r.ctxError(ctx, rctx, err)
	}
	checkErr := r.runChecks(rctx)
	if rctx.Err() == nil {
		if err := r.sweep(rctx); err != nil {
			return Result{}, errors.Join(err, checkErr)
		}
	}
	if checkErr != nil {
		return Result{}, r.ctxError(ctx, rctx, checkErr)
	}
	return Result{}, nil
}

// ctxError replaces an error caused by the end of the run's context with
// why it ended: the caller cancelled, or the run timed out.
func (r *run) ctxError(parent, rctx context.Context, err error) error {
	switch {
	case errors.Is(err, ErrChecksFailed), errors.Is(err, ErrTestsFailed):
		return err
	case parent.Err() != nil:
		return fmt.Errorf("%s: cancelled%s: %w", r.what(), r.waitingFor(), parent.Err())
	case rctx.Err() != nil:
		return fmt.Errorf("%s: %w%s (raise the integration timeout, or make the services start faster)", r.what(), context.Cause(rctx), r.waitingFor())
	}
	return err
}

// run is the state of one Run.
type run struct {
	rt   *docker.Runtime
	o    Options
	log  *slog.Logger
	out  io.Writer
	file string // the compose file as the user named it

	mu       sync.Mutex
	services map[string]*serviceState
	checks   []CheckResult
	waiting  map[string]bool // services Run waits for, for cancellation messages
	built    []string        // the IDs of the images it built
}

type serviceState struct {
	id        string // container ID once created
	healthy   bool
	exited    bool
	exitCode  int
	hostPorts map[int]int
	logs      []string
}

func newRun(rt *docker.Runtime, o Options) (*run, error) {
	if o.ComposeFile == "" {
		return nil, errors.New("integration: no compose file given (set the path of docker-compose.yml)")
	}
	if rt == nil {
		return nil, errors.New("integration: no Docker runtime given")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	out := o.Output
	if out == nil {
		out = io.Discard
	}
	return &run{
		rt: rt, o: o, out: out, file: cmp.Or(o.Name, o.ComposeFile),
		log:      log.With("component", "integration", "project", o.Project),
		services: map[string]*serviceState{},
		waiting:  map[string]bool{},
	}, nil
}

// what names the run in errors: the project and the compose file.
func (r *run) what() string {
	return fmt.Sprintf("integration %s (compose file %s)", r.o.Project, r.file)
}

func (r *run) progress(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.out, "integration %s: %s\n", r.o.Project, fmt.Sprintf(format, args...))
}

func (r *run) waitingFor() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.waiting) == 0 {
		return ""
	}
	names := slices.Sorted(maps.Keys(r.waiting))
	return " while waiting for service " + strings.Join(names, " and ") + " to be ready"
}

func (r *run) setWaiting(name string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if on {
		r.waiting[name] = true
	} else {
		delete(r.waiting, name)
	}
}

func (r *run) state(name string) *serviceState {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.services[name]
	if s == nil {
		s = &serviceState{hostPorts: map[int]int{}}
		r.services[name] = s
	}
	return s
}

func (r *run) result() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{Checks: r.checks, Services: make(map[string]ServiceResult, len(r.services))}
	for name, s := range r.services {
		res.Services[name] = ServiceResult{Healthy: s.healthy, Exited: s.exited, ExitCode: s.exitCode, HostPorts: s.hostPorts, LastLogs: s.logs}
	}
	return res
}

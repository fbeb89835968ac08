// Package docker runs cutover's tasks (containers) on a Docker Engine: it
// builds images from a service's build context, starts tasks from an image ID
// with their port published on 127.0.0.1 only, and inspects, stops, lists and
// removes them by their dev.cutover.* labels.
//
// It speaks to the engine through github.com/moby/moby/client with API version
// negotiation, so it works with engines as old as API 1.40 (Docker 19.03).
// Errors are short and name the task, image or port involved; the engine's
// own message is kept as the cause.
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/client"
)

// Runtime is a connection to one Docker Engine. It is safe for concurrent use.
type Runtime struct {
	client *client.Client
	host   string
	log    *slog.Logger

	mu    sync.Mutex
	auths map[string]string // registry host → X-Registry-Auth (push.go)

	owner string // the store whose containers these are (SetOwner)
}

// SetOwner makes the containers this runtime starts carry store id's
// LabelOwner, and its lists (ListTasks, RemoveTasks) leave out containers
// another store owns: two CUTOVER_HOMEs with the same project on one engine
// then never remove each other's tasks. Call it before the runtime is used.
func (r *Runtime) SetOwner(id string) { r.owner = id }

// containerLabels are the labels of a container this runtime starts for l.
func (r *Runtime) containerLabels(l Labels) map[string]string {
	m := l.Map()
	if r.owner != "" {
		m[LabelOwner] = r.owner
	}
	return m
}

// foreign reports whether a container with these labels belongs to
// another store than this runtime's. One without LabelOwner (started by a
// cutover before the label) counts as this runtime's, as it did then.
func (r *Runtime) foreign(labels map[string]string) bool {
	o := labels[LabelOwner]
	return r.owner != "" && o != "" && o != r.owner
}

// EngineUnreachableError says that the Docker engine did not answer, and how
// to make it answer.
type EngineUnreachableError struct {
	Host string // DOCKER_HOST or the default unix socket
	Err  error  // the underlying cause
}

func (e *EngineUnreachableError) Error() string {
	return fmt.Sprintf("%s (%s)", e.Problem(), e.Fix())
}

// Problem is the error without its fix: which engine did not answer, and why.
func (e *EngineUnreachableError) Problem() string {
	reason := "no answer"
	switch {
	case e.denied():
		reason = "permission denied"
	case e.Err != nil:
		reason = rootCause(e.Err)
	}
	return fmt.Sprintf("cannot reach the Docker engine at %s: %s", e.Host, reason)
}

// Fix is what to do, for the cause: a user outside the docker group joins
// it; a socket that does not exist, with no dockerd on this machine, wants
// Docker installed (a command that needs no checkout of cutover's source);
// else the engine is started.
func (e *EngineUnreachableError) Fix() string {
	const elsewhere = "; set DOCKER_HOST if it listens elsewhere"
	switch {
	case e.denied():
		return "run as root, or add your user to the docker group: `sudo usermod -aG docker $USER`, then log in again"
	case errors.Is(e.Err, os.ErrNotExist) && runtime.GOOS == "darwin":
		return "start Docker Desktop, or install it: https://docs.docker.com/desktop/" + elsewhere
	case e.NotInstalled():
		return "install Docker Engine (Debian, Ubuntu: `sudo apt-get install docker.io`; others: https://docs.docker.com/engine/install/), then start it: `sudo systemctl start docker`" + elsewhere
	}
	return "start it: `sudo systemctl start docker`, or run `dockerd` in the background" + elsewhere
}

// NotInstalled tells whether the engine is not on this machine at all: its
// socket does not exist and there is no dockerd (a Linux machine's).
func (e *EngineUnreachableError) NotInstalled() bool {
	return errors.Is(e.Err, os.ErrNotExist) && runtime.GOOS != "darwin" && !engineInstalled()
}

// denied: the engine's socket refused this user. The client does not keep
// the errno then, only its words.
func (e *EngineUnreachableError) denied() bool {
	return errors.Is(e.Err, os.ErrPermission) || e.Err != nil && strings.HasPrefix(rootCause(e.Err), "permission denied")
}

// engineInstalled tells whether dockerd is on this machine: on PATH, or
// where packages put it (a user's PATH often lacks /usr/sbin). A variable
// for the tests.
var engineInstalled = func() bool {
	if _, err := exec.LookPath("dockerd"); err == nil {
		return true
	}
	for _, dir := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, "dockerd")); err == nil {
			return true
		}
	}
	return false
}

func (e *EngineUnreachableError) Unwrap() error { return e.Err }

// rootCause returns the innermost system error ("connection refused", "no
// such file or directory") rather than the client's long wrapped text.
func rootCause(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer within the timeout"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		return msg[i+2:]
	}
	return msg
}

// pingTimeout bounds Connect so a hung engine gives an error, not a hang.
const pingTimeout = 10 * time.Second

// Connect connects to the engine named by DOCKER_HOST (and DOCKER_TLS_VERIFY,
// DOCKER_CERT_PATH, DOCKER_API_VERSION), or the default unix socket, and pings
// it, negotiating the API version. When the engine does not answer it returns
// an *EngineUnreachableError.
func Connect(ctx context.Context) (*Runtime, error) {
	c, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		// Only a malformed DOCKER_HOST or unreadable TLS files get here.
		return nil, fmt.Errorf("docker client: %w (check DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH)", err)
	}
	host := c.DaemonHost()
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	ping, err := c.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &EngineUnreachableError{Host: host, Err: err}
	}
	log := slog.Default().With("component", "docker")
	log.Debug("connected to docker engine", "host", host, "api", c.ClientVersion(), "engine_api", ping.APIVersion)
	return &Runtime{client: c, host: host, log: log}, nil
}

// Close releases the connection to the engine.
func (r *Runtime) Close() error { return r.client.Close() }

// Host is the engine address this runtime talks to, as in DOCKER_HOST.
func (r *Runtime) Host() string { return r.host }

// engineMessage is the engine's error text, made short: a lost connection is
// reported as such, not as the client's multi-clause wrapping.
func engineMessage(err error) string {
	if client.IsErrConnectionFailed(err) {
		return "the Docker engine stopped answering: " + rootCause(err)
	}
	return strings.TrimSpace(err.Error())
}

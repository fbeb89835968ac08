package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cutoverdev/cutover/internal/stats"
)

// ErrNotRunning matches (errors.Is) the error of a Client call when no
// proxy answers on the admin socket.
var ErrNotRunning = errors.New("the cutover proxy is not running")

// ErrConflict matches the error of a conditional change that lost a race.
var ErrConflict = errors.New("the proxy state changed meanwhile")

type notRunningError struct{ socket string }

func (e *notRunningError) Error() string {
	return fmt.Sprintf("the cutover proxy is not running (socket %s): start it with `cutover proxy start`", e.socket)
}

func (e *notRunningError) Is(target error) bool { return target == ErrNotRunning }

// Paths of the proxy's files under $CUTOVER_HOME.
func proxyDir(home string) string   { return filepath.Join(home, "proxy") }
func socketPath(home string) string { return filepath.Join(proxyDir(home), "admin.sock") }
func pidPath(home string) string    { return filepath.Join(proxyDir(home), "proxy.pid") }
func statePath(home string) string  { return filepath.Join(proxyDir(home), "state.json") }
func acmeDir(home string) string    { return filepath.Join(proxyDir(home), "acme") }
func logPath(home string) string    { return filepath.Join(proxyDir(home), "proxy.log") }
func restartingPath(home string) string {
	return filepath.Join(proxyDir(home), "restarting")
}
func restartFailedPath(home string) string {
	return filepath.Join(proxyDir(home), "restart-failed")
}
func lockPath(home string) string { return filepath.Join(proxyDir(home), "proxy.lock") }
func adminURL(path string) string { return "http://cutover-proxy" + path }
func quoteGen(gen uint64) string  { return strconv.Quote(strconv.FormatUint(gen, 10)) }
func isDialErr(err error) bool    { var oe *net.OpError; return errors.As(err, &oe) && oe.Op == "dial" }
func newAdminTransport(sock string) *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
}

// Client talks to a running proxy over its admin socket. Safe for concurrent use.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the proxy of home ($CUTOVER_HOME). It
// does not connect until a method is called.
func NewClient(home string) *Client {
	sock := socketPath(home)
	return &Client{socket: sock, hc: &http.Client{Transport: newAdminTransport(sock), Timeout: 30 * time.Second}}
}

// Ping returns the proxy's health, or an error matching ErrNotRunning.
func (c *Client) Ping(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, "/v1/health", nil, nil, &h)
	return h, err
}

// State returns the whole routing state and its generation.
func (c *Client) State(ctx context.Context) (State, uint64, error) {
	var r stateReply
	err := c.do(ctx, http.MethodGet, "/v1/state", nil, nil, &r)
	return r.State, r.Generation, err
}

// PutState replaces the whole state. With ifMatch > 0 the change is made
// only if the state is still at that generation (else ErrConflict).
// It returns the new generation.
func (c *Client) PutState(ctx context.Context, s State, ifMatch uint64) (uint64, error) {
	h := http.Header{}
	if ifMatch > 0 {
		h.Set("If-Match", quoteGen(ifMatch))
	}
	var r genReply
	err := c.do(ctx, http.MethodPut, "/v1/state", h, s, &r)
	return r.Generation, err
}

// PutScope replaces the listeners and target groups of one environment
// (names starting with scope+"/"); an empty State removes them all.
func (c *Client) PutScope(ctx context.Context, scope string, s State) error {
	return c.do(ctx, http.MethodPut, "/v1/scopes/"+url.PathEscape(scope), nil, s, nil)
}

// SetWeights atomically replaces the forward list of one rule.
func (c *Client) SetWeights(ctx context.Context, wc WeightChange) error {
	return c.do(ctx, http.MethodPost, "/v1/weights", nil, wc, nil)
}

// Targets reports every target and its health.
func (c *Client) Targets(ctx context.Context) ([]TargetStatus, error) {
	var ts []TargetStatus
	err := c.do(ctx, http.MethodGet, "/v1/targets", nil, nil, &ts)
	return ts, err
}

// Stats returns the per target group counters since the proxy started.
func (c *Client) Stats(ctx context.Context) (stats.Stats, error) {
	var s stats.Stats
	err := c.do(ctx, http.MethodGet, "/v1/stats", nil, nil, &s)
	return s, err
}

// restartWait bounds how long a call waits for the next proxy while the
// running one hands over to it (`cutover proxy restart`).
const restartWait = 15 * time.Second

func (c *Client) do(ctx context.Context, method, path string, h http.Header, in, out any) error {
	var payload []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		payload = b
	}
	start := time.Now()
	askedAgain := false
	for {
		err := c.once(ctx, method, path, h, payload, out)
		// While a proxy hands over to the next one, its admin socket
		// closes and a change gets 503 before the next proxy answers: wait
		// for it (not for Ping, which says whether a proxy answers now).
		if err == nil || path == "/v1/health" || time.Since(start) > restartWait {
			return err
		}
		if !c.restarting(err) {
			// A proxy that answered "handing over" and whose marker is
			// gone since has just ended the hand-over (or given it up and
			// thawed: it removes the marker once it takes changes again):
			// ask once more.
			var he *handingOverError
			if askedAgain || !errors.As(err, &he) {
				return err
			}
			askedAgain = true
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// restarting reports whether err may come from a hand-over in progress:
// the marker the handing proxy writes is there, and recent.
func (c *Client) restarting(err error) bool {
	var he *handingOverError
	if !errors.As(err, &he) && !errors.Is(err, ErrNotRunning) && !errors.Is(err, errTransport) {
		return false
	}
	st, serr := os.Stat(restartingPath(filepath.Dir(filepath.Dir(c.socket))))
	return serr == nil && time.Since(st.ModTime()) < restartWait
}

// handingOverError is the 503 of a proxy handing over to the next one.
type handingOverError struct{ msg string }

func (e *handingOverError) Error() string { return "cutover proxy: " + e.msg }

var errTransport = errors.New("cutover proxy")

func (c *Client) once(ctx context.Context, method, path string, h http.Header, payload []byte, out any) error {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, adminURL(path), body)
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if isDialErr(err) {
			return &notRunningError{c.socket}
		}
		return fmt.Errorf("%w (socket %s): %w", errTransport, c.socket, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e errorReply
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e); err != nil || e.Error == "" {
			e.Error = "answered " + resp.Status
		}
		if resp.StatusCode == http.StatusServiceUnavailable && e.Error == errHandingOver {
			return &handingOverError{e.Error}
		}
		err := errors.New("cutover proxy: " + e.Error)
		if resp.StatusCode == http.StatusConflict {
			err = fmt.Errorf("%w: %s", ErrConflict, e.Error)
		}
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("cutover proxy %s %s: bad answer: %v", method, path, err)
	}
	return nil
}

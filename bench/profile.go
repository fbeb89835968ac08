package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"
)

// cpuProfile records a CPU profile of the cutover proxy for d: over its
// admin socket (the process was started with proxy.PprofEnv), or of this
// process when the proxy runs in it.
func (p *cutoverProxy) cpuProfile(ctx context.Context, d time.Duration) ([]byte, error) {
	if p.engine != nil {
		var buf bytes.Buffer
		if err := pprof.StartCPUProfile(&buf); err != nil {
			return nil, err
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		pprof.StopCPUProfile()
		return buf.Bytes(), ctx.Err()
	}
	sock := filepath.Join(p.home, "proxy", "admin.sock")
	hc := &http.Client{Timeout: d + 30*time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", sock)
		}}}
	url := "http://cutover-proxy/debug/pprof/profile?seconds=" + strconv.Itoa(int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("CPU profile of the cutover proxy: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("CPU profile of the cutover proxy: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return b, err
}

// profileRuns loads the cutover proxy once more in every setting, unmeasured,
// while recording its CPU profile into dir/cutover-CONNS-MODE.pprof.
func profileRuns(ctx context.Context, o options, rep *report, cut *cutoverProxy, load func(conns int, newConn bool, d time.Duration) error) error {
	if err := os.MkdirAll(o.cpuProfile, 0o755); err != nil {
		return err
	}
	for _, s := range rep.Settings {
		type result struct {
			b   []byte
			err error
		}
		got := make(chan result, 1)
		go func() {
			b, err := cut.cpuProfile(ctx, o.duration)
			got <- result{b, err}
		}()
		lerr := load(s.Conns, s.NewConn, o.duration)
		r := <-got
		if lerr != nil {
			return lerr
		}
		if r.err != nil {
			return r.err
		}
		path := filepath.Join(o.cpuProfile, fmt.Sprintf("cutover-%d-%s.pprof", s.Conns, s.mode()))
		if err := os.WriteFile(path, r.b, 0o644); err != nil {
			return err
		}
		progress("CPU profile of the cutover proxy at %d conns %s: %s (go tool pprof -top %s)", s.Conns, s.mode(), path, path)
	}
	return nil
}

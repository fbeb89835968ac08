package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const wrkBin = "wrk"

// wrkScript makes wrk print one machine-readable line at the end: requests,
// duration (µs), socket errors, non-2xx/3xx answers, and the latency
// percentiles p50, p99, p99.9 (µs).
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH-RESULT %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
`

// run is one wrk run against one target.
type run struct {
	Requests  int           `json:"requests"`
	Errors    int           `json:"errors"` // socket errors and answers other than 2xx/3xx
	RPS       float64       `json:"rps"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	P999      time.Duration `json:"p999_ns"`
	CPUPerReq time.Duration `json:"cpu_per_request_ns"` // of the process serving the target; 0 if unknown
	// The backend's and wrk's CPU per request in the same run: the three
	// share the machine's CPUs, so a proxy's requests/s is bounded by the
	// sum of the three, of which the proxy's is about a third.
	BackendCPUPerReq time.Duration `json:"backend_cpu_per_request_ns"`
	LoadCPUPerReq    time.Duration `json:"wrk_cpu_per_request_ns"`
}

// checkTools fails loudly, with the command that installs them, when a
// program the benchmark compares against or loads with is missing.
func checkTools() error {
	var missing, pkgs []string
	for _, t := range []struct{ bin, pkg string }{{wrkBin, "wrk"}, {nginxBin, "nginx-light"}, {haproxyBin, "haproxy"}} {
		if _, err := exec.LookPath(t.bin); err != nil {
			missing = append(missing, t.bin)
			pkgs = append(pkgs, t.pkg)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: install with `apt-get install -y %s` (the benchmark compares against nginx and HAProxy and loads with wrk)",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	return nil
}

// writeWrkScript writes the script into dir and returns its path.
func writeWrkScript(dir string) (string, error) {
	path := filepath.Join(dir, "bench.lua")
	return path, os.WriteFile(path, []byte(wrkScript), 0o600)
}

// runWrk loads url with conns connections for d; with newConn every request
// asks for its connection to be closed, so each one opens a new one.
func runWrk(ctx context.Context, script, url string, conns int, newConn bool, d time.Duration) (run, error) {
	threads := min(2, conns)
	// wrk takes whole seconds.
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", strconv.Itoa(max(1, int(d.Round(time.Second).Seconds()))) + "s", "-s", script}
	if newConn {
		args = append(args, "-H", "Connection: close")
	}
	args = append(args, url)
	cctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, wrkBin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return run{}, fmt.Errorf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r, err := parseWrk(string(out))
	if err == nil && r.Requests > 0 {
		r.LoadCPUPerReq = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()) / time.Duration(r.Requests)
	}
	return r, err
}

// parseWrk reads the BENCH-RESULT line of wrkScript.
func parseWrk(out string) (run, error) {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) != 8 || f[0] != "BENCH-RESULT" {
			continue
		}
		var n [7]int64
		for i := range n {
			v, err := strconv.ParseFloat(f[i+1], 64)
			if err != nil {
				return run{}, fmt.Errorf("wrk result %q: field %d: %v", strings.TrimSpace(line), i+1, err)
			}
			n[i] = int64(v)
		}
		r := run{Requests: int(n[0]), Errors: int(n[2] + n[3]),
			P50: time.Duration(n[4]) * time.Microsecond, P99: time.Duration(n[5]) * time.Microsecond, P999: time.Duration(n[6]) * time.Microsecond}
		if n[1] > 0 {
			r.RPS = float64(n[0]) / (float64(n[1]) / 1e6)
		}
		return r, nil
	}
	return run{}, fmt.Errorf("wrk printed no result line:\n%s", out)
}

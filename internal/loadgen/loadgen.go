// Package loadgen sends bounded HTTP load to a loopback address and reports
// what happened: how many requests failed, the status codes, and latency
// percentiles. Tests use it to prove "zero failed requests" during routing
// changes and deployments; the benchmark uses it to compare load balancers.
//
// It refuses any target that is not a loopback address, and every run is
// bounded by a duration and optionally by a request count.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cutoverdev/cutover/internal/loopback"
)

// Options describes one run.
type Options struct {
	URL         string        // target; host must be 127.0.0.1, ::1 or localhost
	Host        string        // optional Host header
	Concurrency int           // workers; default 8
	Rate        int           // requests per second across all workers; 0 = as fast as possible
	Duration    time.Duration // required upper bound on the run
	MaxRequests int           // optional upper bound on the number of requests
	Timeout     time.Duration // per request; default 5s
	CountHeader string        // optional response header whose values are counted in Result.Header
}

// Result summarises a run. Failed counts transport errors and 5xx answers.
type Result struct {
	Requests int            `json:"requests"`
	Failed   int            `json:"failed"`
	Status   map[int]int    `json:"status"`
	Errors   map[string]int `json:"errors,omitempty"`
	Header   map[string]int `json:"header,omitempty"`
	Elapsed  time.Duration  `json:"elapsed"`
	RPS      float64        `json:"rps"`
	P50      time.Duration  `json:"p50"`
	P95      time.Duration  `json:"p95"`
	P99      time.Duration  `json:"p99"`
}

func (r Result) String() string {
	return fmt.Sprintf("%d requests, %d failed, %.0f req/s, p50 %s p95 %s p99 %s, status %v",
		r.Requests, r.Failed, r.RPS, r.P50, r.P95, r.P99, r.Status)
}

type worker struct {
	lat    []time.Duration
	status map[int]int
	errs   map[string]int
	header map[string]int
	failed int
}

// Run sends load until ctx ends, Duration passes or MaxRequests were sent.
func Run(ctx context.Context, o Options) (Result, error) {
	if err := loopback.CheckURL(o.URL); err != nil {
		return Result{}, fmt.Errorf("loadgen: %w", err)
	}
	if o.Duration <= 0 {
		return Result{}, errors.New("loadgen: Duration must be set: every run is bounded in time")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	transport := &http.Transport{
		DialContext:         loopback.Dialer().DialContext, // a name resolving off the host is refused too
		MaxIdleConns:        o.Concurrency * 2,
		MaxIdleConnsPerHost: o.Concurrency * 2,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: o.Timeout}

	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	var next atomic.Int64
	workers := make([]*worker, o.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{status: map[int]int{}, errs: map[string]int{}, header: map[string]int{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1) - 1
				if o.MaxRequests > 0 && n >= int64(o.MaxRequests) {
					return
				}
				if o.Rate > 0 {
					at := start.Add(time.Duration(n) * time.Second / time.Duration(o.Rate))
					if d := time.Until(at); d > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(d):
						}
					}
				}
				if ctx.Err() != nil {
					return
				}
				w.do(ctx, client, o)
			}
		}()
	}
	wg.Wait()
	return merge(workers, time.Since(start)), nil
}

func (w *worker) do(ctx context.Context, client *http.Client, o Options) {
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, o.URL, nil)
	if err != nil { // only a malformed URL, which CheckLoopback already parsed
		w.lat = append(w.lat, 0)
		w.errs[err.Error()]++
		w.failed++
		return
	}
	if o.Host != "" {
		req.Host = o.Host
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	w.lat = append(w.lat, time.Since(t0))
	if err != nil {
		w.errs[err.Error()]++
		w.failed++
		return
	}
	w.status[resp.StatusCode]++
	if resp.StatusCode >= 500 {
		w.failed++
	}
	if o.CountHeader != "" {
		w.header[resp.Header.Get(o.CountHeader)]++
	}
}

func merge(workers []*worker, elapsed time.Duration) Result {
	r := Result{Status: map[int]int{}, Errors: map[string]int{}, Header: map[string]int{}, Elapsed: elapsed}
	var lat []time.Duration
	for _, w := range workers {
		lat = append(lat, w.lat...)
		r.Failed += w.failed
		for k, v := range w.status {
			r.Status[k] += v
		}
		for k, v := range w.errs {
			r.Errors[k] += v
		}
		for k, v := range w.header {
			r.Header[k] += v
		}
	}
	r.Requests = len(lat)
	if elapsed > 0 {
		r.RPS = float64(r.Requests) / elapsed.Seconds()
	}
	slices.Sort(lat)
	r.P50, r.P95, r.P99 = Percentile(lat, 0.50), Percentile(lat, 0.95), Percentile(lat, 0.99)
	return r
}

// Percentile returns the q-quantile (0..1) of sorted durations by nearest rank.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

package main

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/loopback"
)

// probe watches which version production serves, from outside: one request
// at a time, every few milliseconds, recording each change of the
// X-Bluemed-Version header. loadgen counts versions but not when they
// changed, which is what the switch and rollback figures need.
type probe struct {
	mu       sync.Mutex
	changes  []change
	requests int
	failed   int
	done     chan struct{}
	cancel   context.CancelFunc
}

type change struct {
	At      time.Time // the response arrived
	Version string
}

const probeEvery = 2 * time.Millisecond

// startProbe polls url until stop or maxRun; url must be a loopback address.
func startProbe(ctx context.Context, url string, maxRun time.Duration) (*probe, error) {
	if err := loopback.CheckURL(url); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, maxRun)
	p := &probe{done: make(chan struct{}), cancel: cancel}
	c := &http.Client{Timeout: 2 * time.Second}
	go func() {
		defer close(p.done)
		defer c.CloseIdleConnections()
		last := ""
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := c.Do(req)
			at := time.Now()
			p.mu.Lock()
			p.requests++
			if err != nil || resp.StatusCode >= 500 {
				if ctx.Err() == nil {
					p.failed++
				}
			} else if v := resp.Header.Get("X-Bluemed-Version"); v != last {
				last = v
				p.changes = append(p.changes, change{At: at, Version: v})
			}
			p.mu.Unlock()
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			select {
			case <-ctx.Done():
			case <-time.After(probeEvery):
			}
		}
	}()
	return p, nil
}

func (p *probe) stop() {
	p.cancel()
	<-p.done
}

// serving is the version production served at t (the last change before it).
func (p *probe) serving(t time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := ""
	for _, c := range p.changes {
		if c.At.After(t) {
			break
		}
		v = c.Version
	}
	return v
}

// firstAfter is the first response after t that carried a version other
// than the one served at t.
func (p *probe) firstAfter(t time.Time) (change, bool) {
	before := p.serving(t)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.changes {
		if c.At.After(t) && c.Version != before {
			return c, true
		}
	}
	return change{}, false
}

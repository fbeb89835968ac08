package auth

import "sync"

// Streams counts the long-lived answers (Server-Sent Events) open at once,
// per credential (a session or a token) and in all, so that no credential
// can hold the daemon's connections and store reads without bound. The
// dashboard counts its live views by session, the API its followed logs by
// token.
type Streams struct {
	mu    sync.Mutex
	total int
	per   map[string]int
}

// Acquire counts one more stream of key, unless that passes perKey or
// total; release uncounts it (once, however often it is called).
func (o *Streams) Acquire(key string, perKey, total int) (release func(), ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.total >= total || o.per[key] >= perKey {
		return nil, false
	}
	if o.per == nil {
		o.per = map[string]int{}
	}
	o.total++
	o.per[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			o.mu.Lock()
			defer o.mu.Unlock()
			o.total--
			if o.per[key]--; o.per[key] <= 0 {
				delete(o.per, key)
			}
		})
	}, true
}

package release

import (
	"context"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
)

// withSteps passes the controller's events on to Progress with where the
// deployment stands: step N of M and the timed waits left overall, the same
// figures `status` shows (progressOf over the persisted state). The state
// is read at most once a second; between reads the last figures are reused.
func (m *Manager) withSteps(s config.Strategy) func(deploy.Event) {
	if m.Progress == nil {
		return nil
	}
	var (
		mu   sync.Mutex
		read time.Time
		last *Progress
	)
	return func(ev deploy.Event) {
		mu.Lock()
		if ev.Deployment != "" && (ev.Kind != "progress" || time.Since(read) >= time.Second) {
			read = time.Now()
			if d, err := m.Store.GetDeployment(context.Background(), ev.Deployment); err == nil {
				last = progressOf(s, d, read)
			}
		}
		if last != nil && last.Steps > 1 {
			ev.Step, ev.Steps, ev.Left = last.Step, last.Steps, last.Left
		}
		mu.Unlock()
		m.Progress(ev)
	}
}

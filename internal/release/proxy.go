package release

// The built-in load balancer's process, for the `cutover proxy` commands
// and the daemon: the CLI reaches it only through these functions.

import (
	"context"
	"os"
	"time"

	"github.com/cutoverdev/cutover/internal/proxy"
)

// ProxyStatus is the load balancer's process and the health of every target.
type ProxyStatus struct {
	Proxy   proxy.Health         `json:"proxy"`
	Targets []proxy.TargetStatus `json:"targets"`
}

// RunProxy runs the load balancer of home in the foreground until ctx ends.
func RunProxy(ctx context.Context, home, version string) error {
	return proxy.Run(ctx, home, proxy.RunOptions{Version: version, Procs: proxy.DefaultProcs()})
}

// KeepProxy runs `proxy run` as a child and starts it again if it dies.
func KeepProxy(ctx context.Context, home string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return proxy.Keep(ctx, home, exe, []string{"proxy", "run", "--home", home}, proxy.KeepOptions{})
}

// EnsureProxy starts the load balancer detached unless it runs, and says which process serves.
func EnsureProxy(ctx context.Context, home string) (proxy.Health, error) {
	c, err := StartProxy(ctx, home)
	if err != nil {
		return proxy.Health{}, err
	}
	return c.Ping(ctx)
}

// StopProxy stops the load balancer; in-flight requests get grace. Its routes stay persisted.
func StopProxy(ctx context.Context, home string, grace time.Duration) error {
	return proxy.Stop(ctx, home, grace)
}

// RestartProxy replaces the load balancer's process without refusing a
// connection and returns the new one's health.
func RestartProxy(ctx context.Context, home string) (proxy.Health, error) {
	return proxy.Restart(ctx, home, 20*time.Second)
}

// GetProxyStatus reads the load balancer's process and its targets' health.
func GetProxyStatus(ctx context.Context, home string) (ProxyStatus, error) {
	c := proxy.NewClient(home)
	h, err := c.Ping(ctx)
	if err != nil {
		return ProxyStatus{}, err
	}
	targets, err := c.Targets(ctx)
	return ProxyStatus{Proxy: h, Targets: targets}, err
}

// SuperviseProxy starts the load balancer again whenever it stops
// answering, until ctx ends: it serves its persisted routes at once. The
// daemon runs it.
func (m *Manager) SuperviseProxy(ctx context.Context, every time.Duration) {
	log := m.log()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := m.proxyClient().Ping(ctx); err != nil && ctx.Err() == nil {
				log.Warn("the proxy does not answer: starting it again", "err", err)
				if _, err := m.startedProxy(ctx); err != nil {
					log.Error("restarting the proxy", "err", err)
				}
			}
		}
	}
}

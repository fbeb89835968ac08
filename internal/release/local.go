package release

// The local platform: Docker tasks behind the built-in load balancer.

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/hook"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
)

// connections are the Docker engine and the proxy client, opened on first
// use and shared by copies of a Manager (the pipeline's deploy action
// works on a copy with the execution's config).
type connections struct {
	mu    sync.Mutex
	rt    *docker.Runtime
	proxy *proxy.Client
	// startedProxy: no load balancer answered for the home, and this
	// Manager started it (StopIdleProxy).
	startedProxy bool
}

func (c *connections) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rt != nil {
		c.rt.Close()
		c.rt = nil
	}
}

var connsMu sync.Mutex // guards the lazy creation of Manager.conns

func (m *Manager) connections() *connections {
	connsMu.Lock()
	defer connsMu.Unlock()
	if m.conns == nil {
		m.conns = &connections{}
	}
	return m.conns
}

// runtime connects to the Docker engine once.
func (m *Manager) runtime(ctx context.Context) (*docker.Runtime, error) {
	c := m.connections()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rt == nil {
		rt, err := docker.Connect(ctx)
		if err != nil {
			return nil, err
		}
		if m.Store != nil {
			id, err := m.Store.ID(ctx)
			if err != nil {
				rt.Close()
				return nil, err
			}
			rt.SetOwner(id)
		}
		c.rt = rt
	}
	return c.rt, nil
}

// proxyClient talks to the load balancer of m.Home, whether it runs or not.
func (m *Manager) proxyClient() *proxy.Client {
	c := m.connections()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proxy == nil {
		c.proxy = proxy.NewClient(m.Home)
	}
	return c.proxy
}

// startedProxy makes sure the load balancer runs (StartProxy) and returns its client.
func (m *Manager) startedProxy(ctx context.Context) (*proxy.Client, error) {
	_, pingErr := proxy.NewClient(m.Home).Ping(ctx)
	pc, err := startProxy(ctx, m.Home, m.Binary)
	if err != nil {
		return nil, err
	}
	c := m.connections()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.proxy = pc
	c.startedProxy = c.startedProxy || pingErr != nil
	return pc, nil
}

// StopIdleProxy stops the load balancer this Manager started if it routes
// nothing: a command that failed before anything was deployed (a port in
// use, a failed build, a daemon whose address is taken) leaves no process
// behind. One that was running already, or that serves any listener (an
// environment's persisted routes), is left running. For one-shot commands
// (`up`, `deploy`, a `serve` that never listened): a daemon's concurrent
// deployments share its proxy, and one that failed must not stop it under
// another that has not routed yet.
func (m *Manager) StopIdleProxy(ctx context.Context) {
	c := m.connections()
	c.mu.Lock()
	started, pc := c.startedProxy, c.proxy
	c.mu.Unlock()
	if !started || pc == nil {
		return
	}
	st, _, err := pc.State(ctx)
	if err != nil || len(st.Listeners) > 0 {
		return
	}
	if err := proxy.Stop(ctx, m.Home, 5*time.Second); err != nil {
		m.log().Warn("stopping the load balancer this command started", "err", err)
	}
}

// StartProxy starts the load balancer detached unless one already answers
// for home: this binary's `proxy keep`, which runs `proxy run` and starts it
// again if it dies.
func StartProxy(ctx context.Context, home string) (*proxy.Client, error) {
	return startProxy(ctx, home, "")
}

func startProxy(ctx context.Context, home, exe string) (*proxy.Client, error) {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	return proxy.EnsureRunning(ctx, home, exe, []string{"proxy", "keep", "--home", home})
}

// needsDocker says whether acting on env ("" for all) involves the local
// engine: an ecs environment alone does not, so status and history of one
// work on a machine without Docker.
func (m *Manager) needsDocker(env string) bool {
	if env != "" {
		return !isECS(m.Config, env)
	}
	for name := range m.Config.Environments {
		if !isECS(m.Config, name) {
			return true
		}
	}
	return false
}

// controller is the deployment controller of a local environment under cfg
// (m.Config, or a variant of it such as Up's).
func (m *Manager) controller(cfg *config.Config, env string, rt *docker.Runtime, pc *proxy.Client, timeout time.Duration) *deploy.Controller {
	e := cfg.Environments[env]
	log := m.log()
	return &deploy.Controller{
		Config:   cfg,
		Env:      env,
		Platform: &local.Platform{Config: cfg, Env: env, Runtime: rt, Proxy: pc, Log: log, Secrets: m.secrets()},
		Store:    m.Store,
		Hooks: hook.Env{
			TestURL:       e.Listen.TestURL(),
			ProductionURL: e.Listen.ProductionURL(),
			ProductionTLS: hook.ListenerTLS(cfg, e.Listen),
			Dir:           cfg.Dir(),
			Vars:          map[string]string{"CUTOVER_PROJECT": cfg.Project, "CUTOVER_ENVIRONMENT": env},
		},
		Timeout:  timeout,
		Progress: m.withSteps(e.Strategy),
		Log:      log,
		Owner:    m.Actor,
	}
}

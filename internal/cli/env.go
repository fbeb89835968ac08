package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
)

// session holds what a command that acts on an environment needs. close releases it.
type session struct {
	cfg   *config.Config
	home  string
	store *store.Store
	rt    *docker.Runtime
	proxy *proxy.Client
}

// startProxy starts the load balancer detached unless one already answers
// for home: this binary's `proxy keep`, which runs `proxy run` and starts it
// again if it dies.
func startProxy(ctx context.Context, home string) (*proxy.Client, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return proxy.EnsureRunning(ctx, home, exe, []string{"proxy", "keep", "--home", home})
}

func (s *session) close() {
	if s.rt != nil {
		s.rt.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// needsDocker says whether acting on envName ("" for all) involves the local
// engine: an ecs environment alone does not, so `status` and `history` of
// one work on a machine without Docker.
func needsDocker(cfg *config.Config, envName string) bool {
	if envName != "" {
		return !isECS(cfg, envName)
	}
	for name := range cfg.Environments {
		if !isECS(cfg, name) {
			return true
		}
	}
	return false
}

// openSession loads cutover.yaml, checks envName, opens the store and
// connects to Docker when a local environment is involved. With withProxy it also makes sure the proxy runs.
func openSession(ctx context.Context, g *globals, envName string, withProxy bool) (*session, error) {
	s, err := openStoreSession(ctx, g, envName)
	if err != nil {
		return nil, err
	}
	if needsDocker(s.cfg, envName) {
		if s.rt, err = docker.Connect(ctx); err != nil {
			s.close()
			return nil, err
		}
	}
	if withProxy {
		if s.proxy, err = startProxy(ctx, s.home); err != nil {
			s.close()
			return nil, err
		}
	} else {
		s.proxy = proxy.NewClient(s.home)
	}
	return s, nil
}

// openStoreSession loads cutover.yaml, checks envName and opens the store; it
// connects to nothing else, for commands that show what the store knows
// (history, and status while the engine is down).
func openStoreSession(ctx context.Context, g *globals, envName string) (*session, error) {
	cfg, err := config.Load(g.file)
	if err != nil {
		return nil, err
	}
	if envName != "" {
		if _, ok := cfg.Environments[envName]; !ok {
			return nil, fmt.Errorf("%s: no environment named %q (environments: %s)", g.file, envName, strings.Join(sortedKeys(cfg.Environments), ", "))
		}
	}
	home, err := g.homeDir()
	if err != nil {
		return nil, err
	}
	s := &session{cfg: cfg, home: home}
	if s.store, err = store.Open(ctx, filepath.Join(home, "cutover.db")); err != nil {
		return nil, err
	}
	return s, nil
}

package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/proxy"
)

// CheckPorts fails before anything is built or started when a listener
// port of the environment is taken: by another environment's listener in
// the proxy, or by a process that is not the proxy. The environment's own
// listeners are fine: it is being redeployed.
func CheckPorts(ctx context.Context, pc *proxy.Client, cfg *config.Config, env string) error {
	st, _, err := pc.State(ctx)
	if err != nil {
		return err
	}
	scope := Scope(cfg.Project, env)
	// By port: 0.0.0.0:80 and 127.0.0.1:80 cannot both be bound.
	owner := map[string]string{} // port -> listener name
	for _, l := range st.Listeners {
		if _, port, err := net.SplitHostPort(l.Addr); err == nil {
			owner[port] = l.Name
		}
	}
	l := cfg.Environments[env].Listen
	for _, f := range l.Bound() {
		_, port, _ := net.SplitHostPort(f.Addr)
		fix := fmt.Sprintf("change environments.%s.listen.%s in %s", env, f.Field, filepath.Base(cfg.File))
		if name, ok := owner[port]; ok {
			if strings.HasPrefix(name, scope+"/") {
				continue
			}
			return fmt.Errorf("environments.%s.listen.%s: port %s is already the listener %q of another environment (%s, or `cutover down` that one)", env, f.Field, port, name, fix)
		}
		ln, err := net.Listen("tcp", f.Addr)
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("environments.%s.listen.%s: %s is in use by another process (stop it, or %s)", env, f.Field, f.Addr, fix)
		}
		if err != nil {
			return fmt.Errorf("environments.%s.listen.%s: cannot listen on %s: %v (%s)", env, f.Field, f.Addr, err, fix)
		}
		ln.Close()
	}
	return nil
}

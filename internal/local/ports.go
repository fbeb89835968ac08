package local

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"

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
	owner := map[string]string{} // addr -> listener name
	for _, l := range st.Listeners {
		owner[l.Addr] = l.Name
	}
	l := cfg.Environments[env].Listen
	for _, f := range []struct {
		field string
		port  int
	}{{"port", l.Port}, {"test_port", l.TestPort}} {
		addr := listenAddr(f.port)
		fix := fmt.Sprintf("change environments.%s.listen.%s in %s", env, f.field, filepath.Base(cfg.File))
		if name, ok := owner[addr]; ok {
			if strings.HasPrefix(name, scope+"/") {
				continue
			}
			return fmt.Errorf("environments.%s.listen.%s: %s is already the listener %q of another environment (%s, or `cutover down` that one)", env, f.field, addr, name, fix)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("environments.%s.listen.%s: %s is in use by another process (stop it, or %s)", env, f.field, addr, fix)
		}
		ln.Close()
	}
	return nil
}

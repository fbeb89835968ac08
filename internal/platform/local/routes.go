package local

import (
	"fmt"
	"strings"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/proxy"
)

// Colors alternate between releases so the new set can come up beside the old one.
const (
	Blue  = "blue"
	Green = "green"
)

// Scope is the proxy scope one environment of one project owns: its
// listeners and target groups are named SCOPE/...
func Scope(project, env string) string { return project + "." + env }

// groupName names the target group of one service's set in one color.
func groupName(scope, service, color string) string {
	return scope + "/" + service + "/" + color
}

// colorOfGroup is the color a target group name ends with.
func colorOfGroup(name string) string {
	return name[strings.LastIndexByte(name, '/')+1:]
}

func listenerName(scope, kind string) string { return scope + "/" + kind }

// taskAddr is a registered target: a task's port published on loopback.
type taskAddr struct {
	ID   string
	Port int
}

// colorSet is the tasks of one color, per service.
type colorSet struct {
	Color string
	Tasks map[string][]taskAddr // service -> tasks
}

// buildScope builds the proxy state of one environment: a target group per
// service and color that has tasks or weight, the production listener
// forwarding each service's route by the routing's weights, and the test
// listener forwarding to the test color (or like production when none).
// It is pure, so it is tested without a proxy.
func buildScope(cfg *config.Config, envName string, sets map[string]map[string][]taskAddr, r deploy.Routing) proxy.State {
	env := cfg.Environments[envName]
	scope := Scope(cfg.Project, envName)
	var st proxy.State
	prod := withEdge(proxy.Listener{Name: listenerName(scope, "production"), Addr: env.Listen.ProductionAddr(), TLS: listenerTLS(cfg, env.Listen)}, env.Proxy)
	test := withEdge(proxy.Listener{Name: listenerName(scope, "test"), Addr: env.Listen.TestAddr()}, env.Proxy)
	colors := []string{Blue, Green}
	for _, name := range cfg.ServiceNames() {
		svc := cfg.Services[name]
		var forward, testForward []proxy.WeightedTarget
		for _, color := range colors {
			weight, routed := r.Production[color]
			tasks, running := sets[color][name]
			_, hasSet := sets[color]
			if !routed && !running && !hasSet && r.Test != color {
				continue
			}
			g := targetGroup(svc, groupName(scope, name, color), tasks)
			st.TargetGroups = append(st.TargetGroups, g)
			if routed {
				forward = append(forward, proxy.WeightedTarget{TargetGroup: g.Name, Weight: weight})
			}
			if r.Test == color {
				testForward = []proxy.WeightedTarget{{TargetGroup: g.Name, Weight: 100}}
			}
		}
		if testForward == nil {
			testForward = forward
		}
		if total(forward) > 0 {
			prod.Rules = append(prod.Rules, proxy.Rule{Host: svc.Route.Host, PathPrefix: svc.Route.PathPrefix, Forward: forward})
		}
		if total(testForward) > 0 {
			test.Rules = append(test.Rules, proxy.Rule{Host: svc.Route.Host, PathPrefix: svc.Route.PathPrefix, Forward: testForward})
		}
	}
	if len(prod.Rules) > 0 {
		st.Listeners = append(st.Listeners, prod)
		if a := env.Listen.RedirectAddr(); a != "" {
			st.Listeners = append(st.Listeners, proxy.Listener{Name: listenerName(scope, "redirect"), Addr: a, RedirectTo: prod.Name})
		}
	}
	if len(test.Rules) > 0 {
		st.Listeners = append(st.Listeners, test)
	}
	return st
}

// listenerTLS is the proxy's TLS of a production listener, with absolute paths.
func listenerTLS(cfg *config.Config, l config.Listen) *proxy.TLS {
	if l.TLS == nil {
		return nil
	}
	http1Only := l.TLS.HTTP2 != nil && !*l.TLS.HTTP2
	if a := l.TLS.ACME; a != nil {
		return &proxy.TLS{ACME: &proxy.ACME{Email: a.Email, Domains: a.Domains, Directory: a.Directory,
			CARoot: cfg.TLSPath(a.CARoot), RenewBefore: proxy.Duration(a.RenewBefore.Std())}, HTTP1Only: http1Only}
	}
	return &proxy.TLS{CertFile: cfg.TLSPath(l.TLS.CertFile), KeyFile: cfg.TLSPath(l.TLS.KeyFile), HTTP1Only: http1Only}
}

func total(ws []proxy.WeightedTarget) int {
	n := 0
	for _, w := range ws {
		n += w.Weight
	}
	return n
}

func targetGroup(svc *config.Service, name string, tasks []taskAddr) proxy.TargetGroup {
	h := svc.Health
	tg := proxy.TargetGroup{
		Name: name,
		Health: proxy.HealthCheck{
			Path:               h.Path,
			Interval:           proxy.Duration(h.Interval.Std()),
			Timeout:            proxy.Duration(h.Timeout.Std()),
			HealthyThreshold:   h.HealthyThreshold,
			UnhealthyThreshold: h.UnhealthyThreshold,
			SuccessCodes:       h.SuccessCodes,
		},
		DeregistrationDelay: proxy.Duration(svc.DeregistrationDelay.Std()),
	}
	for _, t := range tasks {
		tg.Targets = append(tg.Targets, proxy.Target{ID: t.ID, Addr: fmt.Sprintf("127.0.0.1:%d", t.Port)})
	}
	return tg
}

package local

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/proxy"
)

// Colors alternate between releases so the new set can come up beside the old one.
const (
	Blue  = "blue"
	Green = "green"
)

// otherColor returns the color a release after one in c runs in.
func otherColor(c string) string {
	if c == Blue {
		return Green
	}
	return Blue
}

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

// routes builds the proxy state of one environment (the scope env/): the
// production listener forwards each service's route to the sets by weight
// (percent to next; the rest to prev), and the test listener sends
// everything to next. It is pure, so it is tested without a proxy.
func routes(cfg *config.Config, envName string, prev *colorSet, next colorSet, percentNext int) proxy.State {
	env := cfg.Environments[envName]
	scope := Scope(cfg.Project, envName)
	var st proxy.State
	prod := proxy.Listener{Name: listenerName(scope, "production"), Addr: "127.0.0.1:" + strconv.Itoa(env.Listen.Port)}
	test := proxy.Listener{Name: listenerName(scope, "test"), Addr: "127.0.0.1:" + strconv.Itoa(env.Listen.TestPort)}
	for _, name := range cfg.ServiceNames() {
		svc := cfg.Services[name]
		nextGroup := targetGroup(svc, groupName(scope, name, next.Color), next.Tasks[name])
		st.TargetGroups = append(st.TargetGroups, nextGroup)
		forward := []proxy.WeightedTarget{{TargetGroup: nextGroup.Name, Weight: percentNext}}
		if prev != nil && percentNext < 100 {
			prevGroup := targetGroup(svc, groupName(scope, name, prev.Color), prev.Tasks[name])
			st.TargetGroups = append(st.TargetGroups, prevGroup)
			forward = append(forward, proxy.WeightedTarget{TargetGroup: prevGroup.Name, Weight: 100 - percentNext})
		}
		prod.Rules = append(prod.Rules, proxy.Rule{Host: svc.Route.Host, PathPrefix: svc.Route.PathPrefix, Forward: forward})
		test.Rules = append(test.Rules, proxy.Rule{Host: svc.Route.Host, PathPrefix: svc.Route.PathPrefix,
			Forward: []proxy.WeightedTarget{{TargetGroup: nextGroup.Name, Weight: 100}}})
	}
	st.Listeners = []proxy.Listener{prod, test}
	return st
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

// servingColor is the color that takes most production traffic in a
// scope's routes, or "" when none does: the proxy's routes, not the store,
// say what is serving, because the proxy outlives any controller.
func servingColor(st proxy.State, scope string) string {
	weight := map[string]int{}
	for _, l := range st.Scoped(scope).Listeners {
		if l.Name != listenerName(scope, "production") {
			continue
		}
		for _, r := range l.Rules {
			for _, f := range r.Forward {
				weight[colorOfGroup(f.TargetGroup)] += f.Weight
			}
		}
	}
	best := ""
	for _, c := range []string{Blue, Green} {
		if weight[c] > weight[best] {
			best = c
		}
	}
	return best
}

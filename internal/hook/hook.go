// Package hook runs the lifecycle hooks of a deployment (config.Hook): an HTTP
// check sent through one of the environment's listeners on 127.0.0.1, or a
// command run on the host. Each run returns a Result carrying the evidence the
// deployment records and shows when a hook fails and the deployment rolls back.
package hook

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/proc"
)

// Env is what hooks run against.
type Env struct {
	TestURL, ProductionURL string            // listener base URLs, e.g. http://127.0.0.1:8081 (no trailing slash)
	ProductionTLS          *TLS              // how to reach an HTTPS production listener (ListenerTLS); nil for plain HTTP
	Dir                    string            // working directory for commands (the project dir)
	Vars                   map[string]string // exported to commands: CUTOVER_DEPLOYMENT_ID, CUTOVER_ENVIRONMENT, ...
}

// Result is the outcome of one hook.
type Result struct {
	Event    string        `json:"event"` // lifecycle event, e.g. AfterAllowTestTraffic
	Name     string        `json:"name"`  // hook name, or one made from the check ("GET /api/health")
	OK       bool          `json:"ok"`
	Duration time.Duration `json:"duration"`
	Detail   string        `json:"detail"` // evidence, one line
}

// Run runs one hook with its timeout (config.DefaultHookTimeout when unset) and
// reports the outcome; a failing hook is a Result with OK false, never an error.
func Run(ctx context.Context, event string, h config.Hook, env Env) Result {
	timeout := h.Timeout.Std()
	if timeout <= 0 {
		timeout = config.DefaultHookTimeout
	}
	r := Result{Event: event, Name: Name(h)}
	start := time.Now()
	switch {
	case h.HTTP != nil && len(h.Command) == 0:
		r.OK, r.Detail = runHTTP(ctx, *h.HTTP, env, timeout)
	case h.HTTP == nil && len(h.Command) > 0:
		r.OK, r.Detail = runCommand(ctx, h.Command, h.PassEnv, env, timeout)
		r.Detail = redact(r.Detail, env.Vars, h.PassEnv)
	default:
		r.Detail = "the hook must have exactly one of http or command"
	}
	r.Duration = time.Since(start)
	return r
}

// RunAll runs hooks in order and stops at the first failure, whose error says in
// one line which hook failed and why. The results of the hooks that ran are
// returned in both cases.
func RunAll(ctx context.Context, event string, hooks []config.Hook, env Env) ([]Result, error) {
	var results []Result
	for i, h := range hooks {
		r := Run(ctx, event, h, env)
		results = append(results, r)
		if !r.OK {
			return results, fmt.Errorf("%s hook %d %q failed: %s", event, i+1, r.Name, r.Detail)
		}
	}
	return results, nil
}

// Name is the hook's name, or one made from what it checks.
func Name(h config.Hook) string {
	switch {
	case h.Name != "":
		return h.Name
	case h.HTTP != nil:
		return method(*h.HTTP) + " " + h.HTTP.Path
	case len(h.Command) > 0:
		return "command " + shorten(strings.Join(h.Command, " "), 60)
	}
	return "hook"
}

// commandEnv is the environment of a command: the allow-listed host variables
// (proc.HostEnv, HOME, USER, LOGNAME) and those the hook names (pass_env),
// plus the listener URLs, plus env.Vars (which win), in a stable order.
func commandEnv(pass []string, env Env) []string {
	vars := map[string]string{}
	if env.TestURL != "" {
		vars["CUTOVER_TEST_URL"] = env.TestURL
	}
	if env.ProductionURL != "" {
		vars["CUTOVER_PRODUCTION_URL"] = env.ProductionURL
	}
	if t := env.ProductionTLS; t != nil && t.ServerName != "" {
		vars["CUTOVER_PRODUCTION_SERVER_NAME"] = t.ServerName // for curl --resolve NAME:PORT:127.0.0.1
	}
	for k, v := range env.Vars {
		vars[k] = v
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := proc.Environ(append([]string{"HOME", "USER", "LOGNAME"}, pass...)...)
	for _, k := range keys {
		out = append(out, k+"="+vars[k])
	}
	return out
}

// secretWords mark variables whose values must not reach a Detail, even when a
// script prints them.
var secretWords = []string{"SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "API_KEY", "ACCESS_KEY"}

// redact replaces the values of secret-looking variables (of the host and of vars)
// in s, because command output is stored in the deployment's event log. The
// variables a hook names in pass_env are redacted whatever their names: they
// are passed from cutover's own environment because the command needs them,
// and a DATABASE_URL carries its password.
func redact(s string, vars map[string]string, passed []string) string {
	for _, k := range passed {
		if v := os.Getenv(k); len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	check := func(k, v string) {
		if len(v) < 4 {
			return // too short to replace without mangling ordinary words
		}
		up := strings.ToUpper(k)
		for _, w := range secretWords {
			if strings.Contains(up, w) {
				s = strings.ReplaceAll(s, v, "[redacted]")
				return
			}
		}
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		check(k, v)
	}
	for k, v := range vars {
		check(k, v)
	}
	return s
}

// oneLine flattens text into a single line for a Detail.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// shorten cuts s to at most n bytes without splitting a UTF-8 character.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

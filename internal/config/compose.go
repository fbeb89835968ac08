package config

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/cutoverdev/cutover/internal/atomicfile"
)

// FromCompose drafts a configuration from a docker-compose file, for `cutover init`. The
// draft is meant to be written next to the compose file: build contexts are relative to
// its directory. Defaults are not applied, so that Marshal writes only what was found.
// The notes tell the user what could not be carried over and what was guessed.
//
// Every profile of the compose file is read. Mapping:
//   - build context and dockerfile; when the Dockerfile copies prebuilt files (bin/app)
//     and the repository says how to build them (a Go main package, a package.json build
//     script), build commands that produce them;
//   - a service with an image and no build (a database, a cache, a third-party image) is
//     not deployed by cutover when other services are built from the repository: it is
//     left out with a note. When no service is built, image services are deployed;
//   - port: the container (target) port of the first TCP entry of ports:, else of expose:;
//     a service without either cannot sit behind the load balancer and is skipped;
//   - health: path, interval, timeout, retries and start_period of a healthcheck that
//     names a path: curl or wget of a URL, or a command given the path as an argument
//     (["CMD", "/app", "-healthcheck", "/api/health"]); otherwise path / and a note;
//   - env: environment: without values that look like secrets (they get a note instead);
//   - desired_count: deploy.replicas, else 1;
//   - routes: a lone service gets path_prefix /. With several, the first one whose name
//     contains "front", "web" or "ui" gets path_prefix /. Another service whose health
//     path starts with a segment that the front end's sources call on their own origin
//     (/api for /api/health, when "/api/" is in its .js or .html) gets path_prefix /api;
//     every other one gets host NAME.localhost. Host routes keep request paths unchanged,
//     which path prefixes would not (the proxy does not strip them);
//   - environments: staging (rolling, branch develop, port 8180) and production
//     (blue_green, branch main, promoted from staging after an approval that times out
//     after 168h, port 8080, test port 8081).
func FromCompose(ctx context.Context, composePath string) (*Config, []string, error) {
	return FromComposeIn(ctx, composePath, "")
}

// FromComposeIn is FromCompose with dir, when set, as the compose working
// directory (what the file's relative paths, env_file and .env, are
// relative to) instead of the file's own directory: an untrusted run's
// integration reads its base's compose file from outside the workspace
// and resolves it in the workspace.
func FromComposeIn(ctx context.Context, composePath, dir string) (*Config, []string, error) {
	abs, err := filepath.Abs(composePath)
	if err != nil {
		return nil, nil, fmt.Errorf("compose file %s: %w", composePath, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, nil, fmt.Errorf("compose file %s cannot be read: %w (pass the path of your docker-compose.yml)", composePath, errors.Unwrap(err))
	}
	if dir == "" {
		dir = filepath.Dir(abs)
	}
	unset := map[string]bool{}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(dir), cli.WithOsEnv, cli.WithDotEnv,
		// compose-go warns of an unset variable on logrus (a raw
		// level=warning line); the draft's notes say it instead.
		cli.WithLoadOptions(func(o *loader.Options) {
			if o.Interpolate != nil {
				o.Interpolate.Substitute = quietSubstitute(unset)
			}
		}),
		// Every profile: a draft covers all services, and a service may depend on
		// one that only a profile enables.
		cli.WithProfiles([]string{"*"}))
	if err != nil {
		return nil, nil, fmt.Errorf("compose file %s: %w", composePath, err)
	}
	project, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot use compose file %s: %w (check it with `docker compose config`)", composePath, err)
	}

	m := composeMapper{dir: dir, deployImages: true}
	for _, k := range slices.Sorted(maps.Keys(unset)) {
		m.notef("variable %s is not set (in this shell or .env), so the compose file's ${%s} became blank in the draft: a service's secret gets its value from cutover secrets set; set any other value in cutover.yaml", k, k)
	}
	for _, s := range project.Services {
		if s.Build != nil {
			// The repository builds its services: image-only ones are what they
			// use (databases, caches), not what cutover deploys.
			m.deployImages = false
		}
	}
	c := &Config{Version: 1, Project: toLabel(project.Name), Services: map[string]*Service{}}
	if c.Project == "" {
		c.Project = "app"
		m.notef("project: compose project name %q cannot be used; named the project %q", project.Name, c.Project)
	}
	m.project = c.Project
	for _, name := range slices.Sorted(maps.Keys(project.Services)) {
		s := project.Services[name]
		svc := m.service(name, s)
		if svc == nil {
			continue
		}
		if len(s.Profiles) > 0 {
			m.notef("%s: in compose profile %s; cutover deploys it like the others", name, strings.Join(s.Profiles, ", "))
		}
		label := toLabel(name)
		if _, taken := c.Services[label]; taken || label == "" {
			m.notef("%s: skipped: its name cannot be made into a distinct service name (rename it)", name)
			continue
		}
		if label != name {
			m.notef("%s: renamed to %q (service names are lowercase letters, digits and dashes)", name, label)
		}
		c.Services[label] = svc
	}
	if len(c.Services) == 0 {
		return nil, m.notes, fmt.Errorf("compose file %s has no service cutover can run: each needs a build or image and a port (ports: or expose:)", composePath)
	}
	m.routes(c)
	c.Environments = map[string]*Environment{
		"staging": {
			Branch:   "develop",
			Listen:   Listen{Port: 8180},
			Strategy: Strategy{Type: StrategyRolling},
		},
		"production": {
			Branch:      "main",
			PromoteFrom: "staging",
			Listen:      Listen{Port: 8080, TestPort: 8081},
			Approval:    &Approval{Required: true, Timeout: Duration(168 * time.Hour)},
			Strategy:    Strategy{Type: StrategyBlueGreen, Traffic: TrafficAllAtOnce},
		},
	}
	return c, m.notes, nil
}

type composeMapper struct {
	dir          string
	project      string // the drafted project's name
	notes        []string
	deployImages bool // no service is built: image-only services are the app
}

func (m *composeMapper) notef(format string, args ...any) {
	m.notes = append(m.notes, fmt.Sprintf(format, args...))
}

func (m *composeMapper) service(name string, s types.ServiceConfig) *Service {
	svc := &Service{DesiredCount: 1}
	if s.Build == nil && s.Image != "" && !m.deployImages {
		m.notef("%s: not deployed by cutover: it runs the image %s and builds nothing from the repository (run it beside cutover, such as a managed database, and pass its address to the services in env; or add it by hand with image: if it serves HTTP)", name, s.Image)
		return nil
	}
	port, how := composePort(s)
	if port == 0 {
		m.notef("%s: skipped: it has no ports: or expose:, so the load balancer cannot reach it (add it by hand if it serves HTTP)", name)
		return nil
	}
	svc.Port = port
	if how != "" {
		m.notef("%s: %s", name, how)
	}
	switch {
	case s.Build != nil && s.Build.DockerfileInline != "":
		m.notef("%s: skipped: dockerfile_inline cannot be used (write it to a Dockerfile and add the service by hand)", name)
		return nil
	case s.Build != nil && isRemoteContext(s.Build.Context):
		m.notef("%s: skipped: build context %s is remote (cutover builds from the repository)", name, s.Build.Context)
		return nil
	case s.Build != nil:
		svc.Build = m.build(name, s.Build)
	case s.Image != "":
		svc.Image = s.Image
	default:
		m.notef("%s: skipped: it has neither build nor image", name)
		return nil
	}
	svc.Health = m.health(name, s.HealthCheck, port)
	svc.Env, svc.Secrets = m.env(name, "environment", s.Environment)
	if s.Deploy != nil && s.Deploy.Replicas != nil && *s.Deploy.Replicas >= 0 {
		svc.DesiredCount = *s.Deploy.Replicas
	}
	return svc
}

func composePort(s types.ServiceConfig) (int, string) {
	var tcp []uint32
	for _, p := range s.Ports {
		if p.Target > 0 && (p.Protocol == "" || p.Protocol == "tcp") {
			tcp = append(tcp, p.Target)
		}
	}
	if len(tcp) > 0 {
		if len(tcp) > 1 {
			return int(tcp[0]), fmt.Sprintf("has %d ports; using container port %d (the load balancer reaches one port per service)", len(tcp), tcp[0])
		}
		return int(tcp[0]), ""
	}
	for _, e := range s.Expose {
		digits := strings.TrimSuffix(strings.SplitN(e, "-", 2)[0], "/tcp")
		if p, err := strconv.Atoi(digits); err == nil && p > 0 && p < 65536 {
			return p, ""
		}
	}
	return 0, ""
}

func isRemoteContext(ctx string) bool {
	return strings.Contains(ctx, "://") || strings.HasPrefix(ctx, "git@")
}

func (m *composeMapper) build(name string, b *types.BuildConfig) *Build {
	out := &Build{Context: m.rel(b.Context, m.dir)}
	if df := b.Dockerfile; df != "" && df != DefaultDockerfile {
		out.Dockerfile = m.rel(df, filepath.Join(m.dir, filepath.FromSlash(out.Context)))
	}
	out.Args, _ = m.env(name, "build.args", b.Args)
	dockerfile := cmp.Or(out.Dockerfile, DefaultDockerfile)
	out.Commands = m.buildCommands(name, filepath.Join(m.dir, filepath.FromSlash(out.Context)), dockerfile)
	return out
}

// referenceRe finds the plain variable references of a compose value,
// $NAME and ${NAME}, and the $$ escape (no reference).
var referenceRe = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// quietSubstitute is compose-go's substitution without its logrus warning,
// recording in unset each plainly referenced variable that has no value
// (${NAME:-default} and the like are not unset: they say what to use).
func quietSubstitute(unset map[string]bool) func(string, template.Mapping) (string, error) {
	return func(tmpl string, mapping template.Mapping) (string, error) {
		for _, m := range referenceRe.FindAllStringSubmatch(tmpl, -1) {
			if name := m[1] + m[2]; name != "" {
				if _, ok := mapping(name); !ok {
					unset[name] = true
				}
			}
		}
		return template.SubstituteWithOptions(tmpl, mapping, template.WithoutLogging)
	}
}

// rel writes path relative to base, with forward slashes, as cutover.yaml wants it.
func (m *composeMapper) rel(path, base string) string {
	if path == "" {
		return "."
	}
	if filepath.IsAbs(path) {
		if r, err := filepath.Rel(base, path); err == nil {
			path = r
		}
	}
	return filepath.ToSlash(path)
}

var (
	secretKeyRe = regexp.MustCompile(`(?i)(secret|password|passwd|token|key|credential|private)`)
	probeRe     = regexp.MustCompile(`\b(curl|wget)\b`)
	urlRe       = regexp.MustCompile(`https?://[^\s'"]+`)
)

// env copies variables, leaving out what looks like a secret: cutover.yaml
// is committed. A container's secret-looking variable is named in
// secrets instead, its value to be set per environment; a build
// argument's is dropped (an image keeps its build arguments).
func (m *composeMapper) env(name, field string, vars types.MappingWithEquals) (env map[string]string, secrets []string) {
	out := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		v := vars[k]
		secret := secretKeyRe.MatchString(k) || v != nil && hasURLPassword(*v)
		switch {
		case secret && field == "environment":
			secrets = append(secrets, k)
			m.notef("%s: environment %s looks like a secret, so cutover.yaml names it in services.%s.secrets without its value (cutover.yaml is committed): set it in each environment with cutover secrets set ENV %s (on ecs, ECS reads the SSM parameter /cutover/%s/ENV/%s)", name, k, toLabel(name), k, m.project, k)
		case secret:
			m.notef("%s: %s %s was not copied because it looks like a secret: an image keeps its build arguments (give the service its secret at run time, in services.%s.secrets)", name, field, k, name)
		case v == nil:
			m.notef("%s: %s %s takes its value from the host; set it in cutover.yaml if the service needs it", name, field, k)
		default:
			out[k] = *v
		}
	}
	if len(out) == 0 {
		out = nil
	}
	return out, secrets
}

func hasURLPassword(v string) bool {
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return false
	}
	_, ok := u.User.Password()
	return ok
}

func (m *composeMapper) health(name string, h *types.HealthCheckConfig, port int) HealthCheck {
	out := HealthCheck{Path: "/"}
	if h == nil || h.Disable || len(h.Test) == 0 || h.Test[0] == "NONE" {
		m.notef("%s: no healthcheck; the load balancer will probe / on port %d (set health.path to a cheap endpoint)", name, port)
		return out
	}
	cmd := strings.Join(h.Test[1:], " ")
	if target := urlRe.FindString(cmd); probeRe.MatchString(cmd) && target != "" {
		u, err := url.Parse(target)
		if err != nil {
			m.notef("%s: healthcheck %q probes a URL that cannot be read; the load balancer will probe / (set health.path)", name, cmd)
			return out
		}
		if u.Path != "" {
			out.Path = u.Path
		}
		if p := u.Port(); p != "" && p != strconv.Itoa(port) {
			m.notef("%s: healthcheck probes port %s but the service port is %d; the load balancer probes %d", name, p, port, port)
		}
	} else if p := argumentPath(h.Test); p != "" {
		out.Path = p
		m.notef("%s: healthcheck %q names the path %s; the load balancer probes it over HTTP on port %d", name, cmd, p, port)
	} else {
		m.notef("%s: healthcheck %q is not an HTTP probe; the load balancer will probe / (set health.path)", name, cmd)
		return out
	}
	if h.Interval != nil {
		out.Interval = Duration(*h.Interval)
	}
	if h.Timeout != nil {
		interval := out.Interval.Std()
		if interval == 0 {
			interval = DefaultHealthInterval
		}
		if t := time.Duration(*h.Timeout); t < interval {
			out.Timeout = Duration(t)
		} else {
			m.notef("%s: healthcheck timeout %s is not shorter than its interval %s; using the default timeout", name, t, interval)
		}
	}
	if h.Retries != nil && *h.Retries > 0 && *h.Retries < 100 {
		out.UnhealthyThreshold = int(*h.Retries)
	}
	if h.StartPeriod != nil {
		out.GracePeriod = Duration(*h.StartPeriod)
	}
	return out
}

var urlPathRe = regexp.MustCompile(`^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$`)

// argumentPath returns the URL path that an exec-form healthcheck passes to its command,
// as in ["CMD", "/app", "-healthcheck", "/api/health"]: the first argument after the
// executable that looks like a path. A shell-form test (CMD-SHELL) names none.
func argumentPath(test []string) string {
	if len(test) < 3 || test[0] != "CMD" {
		return ""
	}
	for _, a := range test[2:] {
		if urlPathRe.MatchString(a) {
			return a
		}
	}
	return ""
}

var webNameRe = regexp.MustCompile(`front|web|ui`)

// routes gives each service a route; see FromCompose for the rule.
func (m *composeMapper) routes(c *Config) {
	names := c.ServiceNames()
	if len(names) == 1 {
		c.Services[names[0]].Route = Route{PathPrefix: "/"}
		return
	}
	main := ""
	for _, n := range names {
		if webNameRe.MatchString(n) {
			main = n
			break
		}
	}
	var hosts []string
	for _, n := range names {
		if n == main {
			c.Services[n].Route = Route{PathPrefix: "/"}
			continue
		}
		if seg, file := m.sameOrigin(c, main, n); seg != "" {
			c.Services[n].Route = Route{PathPrefix: seg}
			m.notef("routes: %s gets path_prefix %s: %s calls %s/ on its own origin (%s)", n, seg, main, seg, file)
			continue
		}
		c.Services[n].Route = Route{Host: n + ".localhost"}
		hosts = append(hosts, n)
	}
	switch {
	case main == "":
		m.notef("routes: no service looks like the web front end, so each is reached by host (NAME.localhost); give one path_prefix: / to make it the default")
	case len(hosts) > 0:
		m.notef("routes: %s gets all paths; the others are reached by host (such as %s.localhost): change to path_prefix if %s calls them under a path", main, hosts[0], main)
	}
}

// sameOrigin says whether the front end main calls service n on its own origin: n's
// health path starts with a segment (/api of /api/health) that main's sources name
// ("/api/"). It returns the segment and the file that names it, or "".
func (m *composeMapper) sameOrigin(c *Config, main, n string) (seg, file string) {
	if main == "" || c.Services[main].Build == nil {
		return "", ""
	}
	if seg = firstSegment(c.Services[n].Health.Path); seg == "" {
		return "", ""
	}
	dir := filepath.Join(m.dir, filepath.FromSlash(c.Services[main].Build.Context))
	if f := sourceMentions(dir, seg+"/"); f != "" {
		return seg, describeFile(f, m.dir)
	}
	return "", ""
}

var notLabelRe = regexp.MustCompile(`[^a-z0-9-]+`)

// toLabel turns a compose name (which may hold _ and .) into a DNS label.
func toLabel(s string) string {
	s = notLabelRe.ReplaceAllString(strings.ToLower(s), "-")
	s = strings.Trim(s, "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	return s
}

// WriteFromCompose writes file, a cutover.yaml made from the compose file
// composePath (see FromCompose), unless file exists and force is false. It
// returns what it wrote and the notes on what it could not carry over.
func WriteFromCompose(ctx context.Context, file, composePath string, force bool) (*Config, []string, error) {
	if _, err := os.Stat(file); err == nil && !force {
		return nil, nil, fmt.Errorf("%s already exists; not overwriting it (pass --force to replace it)", file)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	cfg, notes, err := FromCompose(ctx, composePath)
	if err != nil {
		return nil, nil, err
	}
	data, err := Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, notes, atomicfile.Write(file, data, 0o644)
}

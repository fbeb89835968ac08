package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// validator collects problems; each names a field path and gets its position from the
// source, or from the closest written parent when the field itself was not written.
type validator struct {
	c  *Config
	ps Problems
}

func (v *validator) add(path, format string, args ...any) {
	p := v.c.position(path)
	v.ps = append(v.ps, Problem{File: v.c.File, Line: p.line, Col: p.col, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *Config) position(path string) position {
	for {
		if p, ok := c.keys[path]; ok || path == "" {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			path = ""
		} else {
			path = path[:i]
		}
	}
}

// Validate checks the whole configuration and returns every problem found as Problems,
// sorted by line, or nil. It expects defaults to be applied (Load and Parse do both).
func (c *Config) Validate() error {
	v := &validator{c: c}
	switch {
	case !c.explicit("version") && c.Version == 0:
		v.add("version", "missing (add version: 1)")
	case c.Version != 1:
		v.add("version", "%d is not a supported version (write version: 1)", c.Version)
	}
	switch {
	case c.Project == "":
		v.add("project", "missing (add a project name such as project: shop)")
	case !IsLabel(c.Project):
		v.add("project", "%q is not a valid name (%s)", c.Project, labelHint)
	}
	if len(c.Services) == 0 {
		v.add("services", "no services (add at least one, with build or image and port)")
	}
	if len(c.Environments) == 0 {
		v.add("environments", "no environments (add at least one, such as staging: { branch: develop })")
	}
	if c.Retention.Revisions < 2 {
		v.add("retention.revisions", "%d is too few (keep at least 2, so a rollback to the previous revision needs no rebuild)", c.Retention.Revisions)
	}
	v.services()
	v.routes()
	v.environments()
	v.listenPorts()
	v.pipeline()
	v.paths()
	return v.ps.err()
}

const labelHint = "use lowercase letters, digits and dashes, at most 63 characters, starting and ending with a letter or digit"

var labelRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// IsLabel says whether s may name a project, service or environment.
func IsLabel(s string) bool { return labelRe.MatchString(s) }

// IsVariableName says whether s may name an environment variable.
func IsVariableName(s string) bool { return envNameRe.MatchString(s) }

func (v *validator) services() {
	for _, name := range v.c.ServiceNames() {
		s, p := v.c.Services[name], "services."+name
		if !IsLabel(name) {
			v.add(p, "%q is not a valid service name (%s)", name, labelHint)
		}
		switch {
		case s.Build != nil && s.Image != "":
			v.add(p, "both build and image are set (keep one)")
		case s.Build == nil && s.Image == "":
			v.add(p, "neither build nor image is set (add build: { context: DIR } or image: REF)")
		case s.Build != nil:
			v.build(p+".build", s.Build)
		}
		switch {
		case s.Port == 0 && !v.c.explicit(p+".port"):
			v.add(p+".port", "missing (add the port the container listens on, such as port: 3000)")
		case s.Port < 1 || s.Port > 65535:
			v.add(p+".port", "%d is out of range (write a port from 1 to 65535)", s.Port)
		}
		v.health(p+".health", &s.Health)
		for k := range s.Env {
			if k == "" || strings.ContainsAny(k, "= \t") {
				v.add(p+".env", "%q is not a valid variable name (use letters, digits and _)", k)
			}
		}
		v.secretNames(p, s)
		if s.DesiredCount < 0 {
			v.add(p+".desired_count", "%d is negative (write 0 or more)", s.DesiredCount)
		}
		if s.Static != nil {
			v.static(p, s)
		}
	}
}

// secretNames checks a service's secret names: variable names, each once,
// and none also given a value in env.
func (v *validator) secretNames(p string, s *Service) {
	seen := map[string]bool{}
	for _, k := range s.Secrets {
		switch {
		case !IsVariableName(k):
			v.add(p+".secrets", "%q is not a valid variable name (use letters, digits and _, not starting with a digit)", k)
		case seen[k]:
			v.add(p+".secrets", "%s is named twice (name it once)", k)
		case hasKey(s.Env, k):
			v.add(p+".secrets", "%s is also in %s.env (a secret's value never comes from cutover.yaml: remove it from env)", k, p)
		}
		seen[k] = true
	}
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// static checks the S3 + CloudFront variant: the pipeline builds the files
// with build.commands and uploads static.dir, a directory inside the
// build context.
func (v *validator) static(p string, s *Service) {
	if s.Build == nil {
		v.add(p+".static", "needs build (the pipeline runs build.commands to produce the files; a prebuilt image has none to upload)")
	}
	dir := s.Static.Dir
	clean := path.Clean(dir)
	switch {
	case strings.TrimSpace(dir) == "":
		v.add(p+".static.dir", "missing (name the directory of the built files, relative to build.context, such as dir: dist)")
	case path.IsAbs(dir) || filepath.IsAbs(dir) || clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(dir, "\\"):
		v.add(p+".static.dir", "%q leaves the build context (write a relative path inside it, such as dist)", dir)
	case strings.ContainsAny(dir, "\"'$`\n"):
		v.add(p+".static.dir", "%q has quotes, $, ` or a newline (write a plain relative path)", dir)
	}
}

func (v *validator) build(p string, b *Build) {
	for i, cmd := range b.Commands {
		if strings.TrimSpace(cmd) == "" {
			v.add(fmt.Sprintf("%s.commands[%d]", p, i), "empty command (remove it)")
		}
	}
	if !v.confineBuild(p, b) || v.c.dir == "" {
		return
	}
	ctx := filepath.Join(v.c.dir, filepath.FromSlash(b.Context))
	if st, err := os.Stat(ctx); err != nil || !st.IsDir() {
		v.add(p+".context", "directory %s does not exist (create it, or fix build.context)", b.Context)
		return
	}
	if _, err := os.Stat(filepath.Join(ctx, filepath.FromSlash(b.Dockerfile))); err != nil {
		shown := filepath.ToSlash(filepath.Join(b.Context, b.Dockerfile))
		v.add(p+".dockerfile", "%s does not exist (create it, or set build.dockerfile)", shown)
	}
}

func (v *validator) health(p string, h *HealthCheck) {
	if !strings.HasPrefix(h.Path, "/") {
		v.add(p+".path", "%q must start with / (write %q)", h.Path, "/"+h.Path)
	}
	if h.Interval <= 0 {
		v.add(p+".interval", "must be more than 0 (write for example 5s)")
	} else if h.Timeout <= 0 || h.Timeout >= h.Interval {
		v.add(p+".timeout", "%s must be more than 0 and shorter than interval %s (lower timeout or raise interval)", h.Timeout, h.Interval)
	}
	if h.HealthyThreshold < 1 {
		v.add(p+".healthy_threshold", "%d must be at least 1", h.HealthyThreshold)
	}
	if h.UnhealthyThreshold < 1 {
		v.add(p+".unhealthy_threshold", "%d must be at least 1", h.UnhealthyThreshold)
	}
	if _, err := parseSuccessCodes(h.SuccessCodes); err != nil {
		v.add(p+".success_codes", "%s", err)
	}
}

var hostRe = regexp.MustCompile(`^(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$`)

// routes checks each route, and that the load balancer can tell the services apart.
func (v *validator) routes() {
	names := v.c.ServiceNames()
	taken := map[Route]string{}
	for _, name := range names {
		r, p := v.c.Services[name].Route, "services."+name+".route"
		if r.Host != "" && !hostRe.MatchString(r.Host) {
			v.add(p+".host", "%q is not a host name (write only the name, such as %s.localhost)", r.Host, name)
		}
		if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
			v.add(p+".path_prefix", "%q must start with / (write %q)", r.PathPrefix, "/"+r.PathPrefix)
		}
		if r == (Route{}) {
			if len(names) > 1 {
				v.add(p, "missing: with several services each needs a route (add route: { path_prefix: /%s } or route: { host: %s.localhost })", name, name)
			}
			continue
		}
		key := Route{Host: strings.ToLower(r.Host), PathPrefix: r.PathPrefix}
		if other, dup := taken[key]; dup {
			v.add(p, "same host and path_prefix as service %s (give each service its own host or path_prefix)", other)
			continue
		}
		taken[key] = name
	}
}

func (v *validator) environments() {
	for _, name := range v.c.EnvironmentNames() {
		e, p := v.c.Environments[name], "environments."+name
		if !IsLabel(name) {
			v.add(p, "%q is not a valid environment name (%s)", name, labelHint)
		}
		if !slices.Contains(platforms, e.Platform) {
			v.add(p+".platform", "%q is not a platform (write %s)", e.Platform, quoteList(platforms))
		}
		v.ecs(p, e)
		v.promoteFrom(name, e)
		if e.Approval != nil && e.Approval.Required && e.Approval.Timeout <= 0 {
			v.add(p+".approval.timeout", "must be more than 0 (write for example 168h)")
		}
		v.approval(p+".approval", e.Approval)
		v.strategy(p+".strategy", &e.Strategy)
		v.hooks(p+".hooks", &e.Hooks)
	}
}

func (v *validator) approval(p string, a *Approval) {
	if a == nil {
		return
	}
	if a.Role != "" && !slices.Contains(ApprovalRoles, a.Role) {
		v.add(p+".role", "%q is not a role that may approve (write %s)", a.Role, quoteList(ApprovalRoles))
	}
	for i, name := range a.Approvers {
		if strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t,") {
			v.add(fmt.Sprintf("%s.approvers[%d]", p, i), "%q is not a token or user name (one name per entry)", name)
		}
	}
}

func (v *validator) promoteFrom(name string, e *Environment) {
	if e.PromoteFrom == "" {
		return
	}
	p := "environments." + name + ".promote_from"
	if e.PromoteFrom == name {
		v.add(p, "an environment cannot promote from itself (name another environment)")
		return
	}
	if v.c.Environments[e.PromoteFrom] == nil {
		v.add(p, "%q is not an environment (write one of %s)", e.PromoteFrom, quoteList(v.c.EnvironmentNames()))
		return
	}
	// Follow the chain; coming back here means promotions could never start.
	at := e.PromoteFrom
	for range len(v.c.Environments) {
		next := v.c.Environments[at]
		if next == nil || next.PromoteFrom == "" {
			return
		}
		if next.PromoteFrom == name {
			v.add(p, "promotion loops back to %s through %s (one environment must not promote from another)", name, at)
			return
		}
		at = next.PromoteFrom
	}
}

// listenPorts checks that local environments do not share a load balancer port.
func (v *validator) listenPorts() {
	used := map[int]string{}
	for _, name := range v.c.EnvironmentNames() {
		e := v.c.Environments[name]
		v.edge(name, e)
		if e.Platform != PlatformLocal {
			continue
		}
		v.listenAddress(name, e.Listen)
		v.listenTLS(name, e.Listen)
		ports := []struct {
			key  string
			port int
		}{{"port", e.Listen.Port}, {"test_port", e.Listen.TestPort}}
		if e.Listen.HTTPRedirectPort != 0 || v.c.explicit("environments."+name+".listen.http_redirect_port") {
			ports = append(ports, struct {
				key  string
				port int
			}{"http_redirect_port", e.Listen.HTTPRedirectPort})
		}
		for _, f := range ports {
			p := "environments." + name + ".listen." + f.key
			if f.port < 1 || f.port > 65535 {
				v.add(p, "%d is out of range (write a port from 1 to 65535)", f.port)
				continue
			}
			if other, dup := used[f.port]; dup {
				v.add(p, "port %d is also used by %s (give each environment its own port and test_port)", f.port, other)
				continue
			}
			used[f.port] = p
		}
	}
}

// listenAddress checks the bind address of an environment's production listener.
func (v *validator) listenAddress(env string, l Listen) {
	p := "environments." + env + ".listen.address"
	a, err := netip.ParseAddr(l.Address)
	switch {
	case err != nil:
		v.add(p, "%q is not an IP address (write 127.0.0.1 for this machine only, 0.0.0.0 for every interface, or one IP address of this machine; no host names, no port)", l.Address)
	case a.Zone() != "":
		v.add(p, "%q has a zone (write the address without %%%s)", l.Address, a.Zone())
	case a.IsMulticast():
		v.add(p, "%q is a multicast address (write 127.0.0.1, 0.0.0.0 or an address of this machine)", l.Address)
	}
}

// listenTLS checks the certificate files of an environment's production
// listener: both given, readable, and a matching pair. Never their content
// in a message.
func (v *validator) listenTLS(env string, l Listen) {
	p := "environments." + env + ".listen"
	if l.TLS == nil {
		if l.HTTPRedirectPort != 0 {
			v.add(p+".http_redirect_port", "redirects to https, but the listener has no tls (add listen.tls, or remove http_redirect_port)")
		}
		return
	}
	t := l.TLS
	if t.ACME != nil {
		if t.CertFile != "" || t.KeyFile != "" {
			v.add(p+".tls", "give either acme or cert_file and key_file, not both")
		}
		v.listenACME(p+".tls.acme", t.ACME)
		return
	}
	if t.CertFile == "" || t.KeyFile == "" {
		v.add(p+".tls", "give both cert_file and key_file (PEM files)")
		return
	}
	if v.c.dir == "" {
		return
	}
	certFile, keyFile := v.c.TLSPath(t.CertFile), v.c.TLSPath(t.KeyFile)
	for _, f := range []struct{ key, path string }{{"cert_file", certFile}, {"key_file", keyFile}} {
		if _, err := os.Stat(f.path); err != nil {
			v.add(p+".tls."+f.key, "cannot read %s: %v (fix the path; relative paths start at cutover.yaml's directory)", f.path, errors.Unwrap(err))
			return
		}
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		v.add(p+".tls", "cannot use cert_file %s with key_file %s: %v (give a PEM certificate chain and its unencrypted PEM private key)", certFile, keyFile, err)
	}
}

func (v *validator) listenACME(p string, a *ACME) {
	if len(a.Domains) == 0 {
		v.add(p+".domains", "missing (name the host names to get a certificate for, such as [app.example.com])")
	}
	for i, d := range a.Domains {
		if !isHostName(d) {
			v.add(fmt.Sprintf("%s.domains[%d]", p, i), "%q is not a host name such as app.example.com (lowercase, at least one dot; no wildcard, scheme or port)", d)
		}
	}
	if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t\r\n<>")) {
		v.add(p+".email", "%q is not an email address", a.Email)
	}
	if a.Directory != "" {
		if u, err := url.Parse(a.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
			v.add(p+".directory", "%q is not an https URL (such as https://acme-v02.api.letsencrypt.org/directory)", a.Directory)
		}
	}
	if a.CARoot == "" || v.c.dir == "" {
		return
	}
	b, err := os.ReadFile(v.c.TLSPath(a.CARoot))
	if err != nil {
		v.add(p+".ca_root", "cannot read %s: %v", v.c.TLSPath(a.CARoot), errors.Unwrap(err))
	} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
		v.add(p+".ca_root", "%s holds no PEM certificate", v.c.TLSPath(a.CARoot))
	}
}

var hostNameRe = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func isHostName(s string) bool { return len(s) <= 253 && hostNameRe.MatchString(s) }

func (v *validator) pipeline() {
	if v.c.Pipeline == nil {
		return
	}
	v.pipelineSettings(v.c.Pipeline)
	v.schedules(v.c.Pipeline)
	v.trustedBranches(v.c.Pipeline)
	stages := map[string]bool{}
	for i, st := range v.c.Pipeline.Stages {
		p := fmt.Sprintf("pipeline.stages[%d]", i)
		if st.Name == "" {
			v.add(p+".name", "missing (name the stage, such as build)")
		} else if stages[st.Name] {
			v.add(p+".name", "stage %q is defined twice (rename one)", st.Name)
		}
		stages[st.Name] = true
		actions := map[string]bool{}
		for j, a := range st.Actions {
			ap := fmt.Sprintf("%s.actions[%d]", p, j)
			if a.Name == "" {
				v.add(ap+".name", "missing (name the action)")
			} else if actions[a.Name] {
				v.add(ap+".name", "action %q is defined twice in this stage (rename one)", a.Name)
			}
			actions[a.Name] = true
			if !slices.Contains(actionKinds, a.Kind) {
				v.add(ap+".kind", "%q is not an action kind (write %s)", a.Kind, quoteList(actionKinds))
			}
			if a.RunOrder < 1 {
				v.add(ap+".run_order", "%d must be at least 1", a.RunOrder)
			}
			if a.Service != "" && v.c.Services[a.Service] == nil {
				v.add(ap+".service", "%q is not a service (write one of %s)", a.Service, quoteList(v.c.ServiceNames()))
			}
			if a.Environment != "" && v.c.Environments[a.Environment] == nil {
				v.add(ap+".environment", "%q is not an environment (write one of %s)", a.Environment, quoteList(v.c.EnvironmentNames()))
			}
			if (a.Kind == "deploy" || a.Kind == "approval") && a.Environment == "" {
				v.add(ap+".environment", "missing (a %s action names its environment)", a.Kind)
			}
			if (a.Kind == ActionCommand || a.Kind == ActionTest) && len(a.Commands) == 0 {
				v.add(ap+".commands", "missing (a %s action runs commands: [\"go test ./...\"])", a.Kind)
			}
			if a.ExitCodeFrom != "" && a.Kind != ActionIntegration {
				v.add(ap+".exit_code_from", "only an integration action takes a test service (move it to the integration action, or remove it)")
			}
			if a.Kind == ActionBuild && a.Service == "" {
				v.add(ap+".service", "missing (a build action names the service it builds)")
			}
			for k, c := range a.Checks {
				if c.Path == "" || c.Path[0] != '/' {
					v.add(fmt.Sprintf("%s.checks[%d].path", ap, k), "%q must start with / (write /api/health)", c.Path)
				}
				if a.Kind == ActionIntegration && c.Service == "" {
					v.add(fmt.Sprintf("%s.checks[%d].service", ap, k), "missing (an integration check names a compose service and its port)")
				}
			}
		}
	}
}

// parseSuccessCodes parses "200", "200,204", "200-299" into inclusive ranges.
func parseSuccessCodes(s string) ([][2]int, error) {
	var ranges [][2]int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, errA := strconv.Atoi(strings.TrimSpace(lo))
		b, errB := a, error(nil)
		if isRange {
			b, errB = strconv.Atoi(strings.TrimSpace(hi))
		}
		if errA != nil || errB != nil || a < 100 || b > 599 || a > b {
			return nil, fmt.Errorf("%q is not a list of HTTP codes (write for example \"200\", \"200,204\" or \"200-399\")", s)
		}
		ranges = append(ranges, [2]int{a, b})
	}
	return ranges, nil
}

// Accepts says whether an HTTP status counts as healthy under SuccessCodes.
func (h HealthCheck) Accepts(status int) bool {
	ranges, err := parseSuccessCodes(h.SuccessCodes)
	if err != nil {
		return status >= 200 && status < 400
	}
	for _, r := range ranges {
		if status >= r[0] && status <= r[1] {
			return true
		}
	}
	return false
}

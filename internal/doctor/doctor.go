// Package doctor checks what cutover needs on this machine and in this project
// (the Docker engine and its API version, git, the listener ports, free disk,
// the proxy, the embedded registry and the state store) and says, for each
// problem, how to fix it. It changes nothing.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/secretstore"
	"github.com/cutoverdev/cutover/internal/short"
	"github.com/cutoverdev/cutover/internal/store"
)

// Status is the outcome of one check.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn" // cutover works, but something deserves attention
	Fail Status = "fail" // a command that needs this will fail
)

// Check is one finding: what was checked, what was found, and the fix when it
// is not ok.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Options are what Run looks at.
type Options struct {
	Home      string         // cutover's state directory
	Config    *config.Config // nil when cutover.yaml could not be loaded
	ConfigErr error          // why it could not be, if so
	// MinFreeBytes is the free disk under which the disk check warns (2 GB by
	// default); under a quarter of it, it fails.
	MinFreeBytes uint64
}

// minAPIVersion is the oldest Docker Engine API cutover is tested against.
const minAPIVersion = "1.41"

// Run runs every check and returns them in a fixed order. It never fails
// itself: what it cannot check is a finding.
func Run(ctx context.Context, o Options) []Check {
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 2e9
	}
	var out []Check
	dockerCheck, rt := checkDocker(ctx)
	out = append(out, dockerCheck, checkGit(ctx), checkConfig(o))
	if rt != nil {
		defer rt.Close()
	}
	pc := proxy.NewClient(o.Home)
	_, proxyErr := pc.Ping(ctx)
	out = append(out, checkPorts(ctx, o, pc, proxyErr == nil)...)
	out = append(out, checkSecrets(o)...)
	out = append(out, checkDisk(ctx, o, rt)...)
	out = append(out, checkProxy(ctx, pc, proxyErr), checkRegistry(ctx, o.Home), checkStore(ctx, o.Home))
	return out
}

// Failed says whether any check failed.
func Failed(cs []Check) bool {
	for _, c := range cs {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

func checkDocker(ctx context.Context) (Check, *docker.Runtime) {
	c := Check{Name: "docker"}
	rt, err := docker.Connect(ctx)
	if err != nil {
		c.Status, c.Detail = Fail, err.Error()
		c.Fix = "start the engine: `sudo systemctl start docker`; set DOCKER_HOST if it listens elsewhere"
		var down *docker.EngineUnreachableError
		if errors.As(err, &down) {
			c.Detail, c.Fix = down.Problem(), down.Fix()
			if down.NotInstalled() {
				// The release archive has no scripts/: only a checkout does.
				c.Fix += "; in a checkout of cutover's source, `sudo scripts/setup.sh --demo true` installs it too (with git and curl)"
			}
		}
		return c, nil
	}
	v, err := rt.EngineClient().ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, "the engine answers a ping but not /version: "+err.Error(), "restart the engine: `sudo systemctl restart docker`"
		return c, rt
	}
	c.Detail = fmt.Sprintf("engine %s, API %s at %s", v.Version, v.APIVersion, rt.Host())
	if olderAPI(v.APIVersion, minAPIVersion) {
		c.Status = Fail
		c.Fix = fmt.Sprintf("upgrade Docker Engine: cutover needs API %s or newer (Docker 20.10+)", minAPIVersion)
		return c, rt
	}
	c.Status = OK
	return c, rt
}

// olderAPI compares "1.40" with "1.41" as version numbers.
func olderAPI(v, min string) bool {
	parse := func(s string) (int, int) {
		a, b, _ := strings.Cut(s, ".")
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x, y
	}
	vx, vy := parse(v)
	mx, my := parse(min)
	return vx < mx || vx == mx && vy < my
}

func checkGit(ctx context.Context) Check {
	c := Check{Name: "git"}
	out, err := exec.CommandContext(ctx, "git", "--version").Output()
	if err != nil {
		c.Status, c.Detail = Fail, "git is not on PATH: "+err.Error()
		c.Fix = "install git (Debian: `apt-get install git`): `cutover run`, `serve` and revision sources need it"
		return c
	}
	c.Status, c.Detail = OK, strings.TrimSpace(string(out))
	return c
}

func checkConfig(o Options) Check {
	c := Check{Name: "config"}
	if o.Config == nil {
		c.Status, c.Detail = Fail, "cutover.yaml: "+firstLine(o.ConfigErr)
		c.Fix = "run `cutover validate` for every problem with its line, or `cutover init` to write one from docker-compose.yml"
		return c
	}
	c.Status = OK
	c.Detail = fmt.Sprintf("%s: project %s, %s, %s", o.Config.File, o.Config.Project, short.Count(len(o.Config.Services), "service"), short.Count(len(o.Config.Environments), "environment"))
	return c
}

func firstLine(err error) string {
	if err == nil {
		return "not loaded"
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// checkPorts checks the listener ports of each local environment: free, or
// held by the proxy for that environment.
func checkPorts(ctx context.Context, o Options, pc *proxy.Client, proxyUp bool) []Check {
	if o.Config == nil {
		return nil
	}
	var out []Check
	for _, env := range o.Config.EnvironmentNames() {
		e := o.Config.Environments[env]
		if e.Platform != "" && e.Platform != config.PlatformLocal {
			continue
		}
		c := Check{Name: "ports " + env, Status: OK, Detail: fmt.Sprintf("%s and test %s are free or this environment's", e.Listen.ProductionAddr(), e.Listen.TestAddr())}
		var err error
		if proxyUp {
			err = local.CheckPorts(ctx, pc, o.Config, env)
		} else {
			err = portsFree(env, e.Listen)
		}
		if err != nil {
			c.Status, c.Detail = Fail, err.Error()
			c.Fix = fmt.Sprintf("free the port, or change environments.%s.listen in %s", env, filepath.Base(o.Config.File))
		}
		out = append(out, c)
	}
	return out
}

// checkSecrets: each local environment has a value for every secret
// cutover.yaml names (a deploy would fail before it builds otherwise), in a
// file only its owner may read.
func checkSecrets(o Options) []Check {
	if o.Config == nil || len(o.Config.SecretNames()) == 0 {
		return nil
	}
	st := secretstore.Open(o.Home, o.Config.Project)
	var out []Check
	for _, env := range o.Config.EnvironmentNames() {
		if e := o.Config.Environments[env]; e.Platform != "" && e.Platform != config.PlatformLocal {
			continue
		}
		names := o.Config.SecretNames()
		c := Check{Name: "secrets " + env, Status: OK, Detail: fmt.Sprintf("%s set", short.Count(len(names), "secret"))}
		if _, err := st.Lookup(env, names); err != nil {
			c.Status, c.Detail = Fail, err.Error()
			var missing secretstore.MissingError
			if errors.As(err, &missing) {
				c.Detail = fmt.Sprintf("no value for %s", strings.Join(missing.Names, ", "))
				cmds := missing.Commands()
				each := "it reads"
				if len(cmds) > 1 {
					each = "each reads"
				}
				c.Fix = strings.Join(cmds, "; ") + " (" + each + " the value from standard input)"
			}
		}
		out = append(out, c)
	}
	return out
}

func portsFree(env string, l config.Listen) error {
	for _, f := range l.Bound() {
		ln, err := net.Listen("tcp", f.Addr)
		if err != nil {
			return fmt.Errorf("environments.%s.listen.%s: cannot listen on %s: %v (the proxy is not running, so it is not cutover's)", env, f.Field, f.Addr, err)
		}
		ln.Close()
	}
	return nil
}

// checkDisk checks the free space where cutover keeps its state and where
// the engine keeps images.
func checkDisk(ctx context.Context, o Options, rt *docker.Runtime) []Check {
	dirs := []struct{ what, dir string }{{"cutover home", existingParent(o.Home)}}
	if rt != nil {
		if info, err := rt.EngineClient().Info(ctx, client.InfoOptions{}); err == nil && info.Info.DockerRootDir != "" {
			if _, err := os.Stat(info.Info.DockerRootDir); err == nil {
				dirs = append(dirs, struct{ what, dir string }{"docker images", info.Info.DockerRootDir})
			}
		}
	}
	var out []Check
	for _, d := range dirs {
		c := Check{Name: "disk " + d.what}
		var fs syscall.Statfs_t
		if err := syscall.Statfs(d.dir, &fs); err != nil {
			c.Status, c.Detail, c.Fix = Warn, fmt.Sprintf("%s: %v", d.dir, err), "check that the directory exists and is readable"
			out = append(out, c)
			continue
		}
		free := fs.Bavail * uint64(fs.Bsize)
		c.Detail = fmt.Sprintf("%.1f GB free at %s", float64(free)/1e9, d.dir)
		switch {
		case free < o.MinFreeBytes/4:
			c.Status = Fail
		case free < o.MinFreeBytes:
			c.Status = Warn
		default:
			c.Status = OK
		}
		if c.Status != OK {
			c.Fix = "remove old images: `cutover prune` (and `docker system prune` for what is not cutover's), or free space on that disk"
		}
		out = append(out, c)
	}
	return out
}

func existingParent(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			return d
		}
	}
}

func checkProxy(ctx context.Context, pc *proxy.Client, pingErr error) Check {
	c := Check{Name: "proxy"}
	if pingErr != nil {
		c.Status, c.Detail = Warn, "not running ("+rootMessage(pingErr)+")"
		c.Fix = "`cutover up ENV` starts it, or `cutover proxy start`; environments that were up get no traffic until it runs"
		return c
	}
	h, err := pc.Ping(ctx)
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, "stopped answering: "+err.Error(), "`cutover proxy stop` then `cutover proxy start`"
		return c
	}
	c.Status, c.Detail = OK, fmt.Sprintf("running: pid %d, version %s, up %s", h.PID, h.Version, time.Duration(h.Uptime).Round(time.Second))
	return c
}

// checkRegistry checks the embedded registry's address file: the registry
// runs only inside `cutover run` and `serve`, so what matters is that its
// address is free or served by a registry.
func checkRegistry(ctx context.Context, home string) Check {
	c := Check{Name: "registry"}
	file := filepath.Join(home, "registry.addr")
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		c.Status, c.Detail = OK, "not used yet (`cutover run` and `serve` start it when they need it)"
		return c
	}
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, err.Error(), "make "+file+" readable by this user"
		return c
	}
	addr := strings.TrimSpace(string(b))
	if _, _, err := net.SplitHostPort(addr); err != nil {
		c.Status, c.Detail, c.Fix = Fail, fmt.Sprintf("%s holds %q, not host:port", file, addr), "remove "+file+" (a new port is picked next time)"
		return c
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		ln, lerr := net.Listen("tcp", addr)
		if lerr != nil {
			c.Status, c.Detail = Fail, fmt.Sprintf("%s is taken by a program that does not answer HTTP", addr)
			c.Fix = "remove " + file + " (a new port is picked next time), or stop that program"
			return c
		}
		ln.Close()
		c.Status, c.Detail = OK, fmt.Sprintf("not running; its address %s is free for the next `cutover run` or `serve`", addr)
		return c
	}
	resp.Body.Close()
	if resp.Header.Get("Docker-Distribution-API-Version") == "" {
		c.Status, c.Detail = Fail, fmt.Sprintf("%s answers HTTP %d but is not a registry (another program took the port)", addr, resp.StatusCode)
		c.Fix = "remove " + file + " (a new port is picked next time), or stop that program"
		return c
	}
	c.Status, c.Detail = OK, fmt.Sprintf("serving at %s", addr)
	return c
}

func checkStore(ctx context.Context, home string) Check {
	c := Check{Name: "store"}
	path := filepath.Join(home, "cutover.db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		c.Status, c.Detail = OK, "no store yet (the first deployment creates "+path+")"
		return c
	}
	fix := fmt.Sprintf("stop cutover, move the file aside (`mv %s %s.broken`) and deploy again; the history in it is lost", path, path)
	st, err := store.Open(ctx, path)
	if err != nil {
		c.Status, c.Detail, c.Fix = Fail, err.Error(), fix
		return c
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		c.Status, c.Detail, c.Fix = Fail, err.Error(), fix
		return c
	}
	c.Status, c.Detail = OK, path+": integrity check ok"
	return c
}

func rootMessage(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

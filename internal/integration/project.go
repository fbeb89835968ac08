package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"gopkg.in/yaml.v3"
)

// load reads the compose file with compose-go, under the run's project name,
// so that compose-go itself names networks and volumes "<project>_<name>".
func (r *run) load(ctx context.Context) (*types.Project, error) {
	if r.o.Project == "" || r.o.Project != loader.NormalizeProjectName(r.o.Project) {
		return nil, fmt.Errorf("integration: project name %q is invalid (use lowercase letters, digits, '-' and '_', starting with a letter or digit, e.g. cutover-it-42)", r.o.Project)
	}
	abs, err := filepath.Abs(r.o.ComposeFile)
	if err != nil {
		return nil, fmt.Errorf("compose file %s: %w", r.file, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("compose file %s cannot be read: %w (check the integration action's compose file path)", r.file, errors.Unwrap(err))
	}
	dir := filepath.Dir(abs)
	if r.o.WorkingDir != "" {
		dir = r.o.WorkingDir
	}
	load := []cli.ProjectOptionsFn{cli.WithWorkingDirectory(dir)}
	if !r.o.Untrusted {
		// cutover's environment holds its secrets: never interpolated into a
		// pull request's stack (a file it controls may be `extends`-ed).
		load = append(load, cli.WithOsEnv)
	} else {
		// compose-go reads env_file and label_file while loading, following
		// links: a pull request's `test.env` may be a link to cutover's own
		// secrets. They are read below, once confined to the workspace.
		load = append(load, cli.WithoutEnvironmentResolution, cli.WithoutLabelsResolution)
		// An included project is loaded with its own .env and env_file for
		// interpolation, read as compose-go finds them, links followed: a
		// pull request's inc/.env linked to /etc/cutover/env put its values
		// in the stack. Not taken in a pull request's run.
		if err := refuseInclude(abs, r.file); err != nil {
			return nil, err
		}
		load = append(load, cli.WithLoadOptions(func(o *loader.Options) { o.SkipInclude = true }))
	}
	load = append(load, cli.WithDotEnv, cli.WithName(r.o.Project))
	opts, err := cli.NewProjectOptions([]string{abs}, load...)
	if err != nil {
		return nil, fmt.Errorf("compose file %s: %w", r.file, err)
	}
	proj, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot use compose file %s: %w (check it with `docker compose -f %s config`)", r.file, err, r.file)
	}
	if len(proj.Services) == 0 {
		return nil, fmt.Errorf("compose file %s has no service to start (add services, or check their profiles)", r.file)
	}
	if r.o.Untrusted {
		return r.resolveFiles(proj, dir)
	}
	return proj, nil
}

// resolveFiles reads the env_file and label_file of an untrusted run's
// services (and of their pre_start hooks) into their environment and labels,
// refusing any that resolves (symbolic links included) outside Options.Root.
// Each file is read through an os.Root of the workspace, so that a link
// swapped in after the check cannot lead out of it either, into a private
// copy that compose-go then parses as it would have parsed the file.
func (r *run) resolveFiles(proj *types.Project, dir string) (*types.Project, error) {
	rootReal, err := filepath.EvalSymlinks(r.o.Root)
	if err != nil {
		return nil, fmt.Errorf("compose file %s: workspace %q: %w (an untrusted run needs its workspace to read env_file and label_file)", r.file, r.o.Root, err)
	}
	root, err := os.OpenRoot(rootReal)
	if err != nil {
		return nil, fmt.Errorf("compose file %s: workspace %s: %w", r.file, rootReal, err)
	}
	defer root.Close()
	tmp, err := os.MkdirTemp("", "cutover-envfiles-")
	if err != nil {
		return nil, fmt.Errorf("compose file %s: %w", r.file, err)
	}
	defer os.RemoveAll(tmp)
	shownAs := map[string]string{} // private copy → the file as the compose file names it
	// named names the files in compose-go's messages as the compose file does.
	named := func(err error) string {
		msg := err.Error()
		for cp, shown := range shownAs {
			msg = strings.ReplaceAll(msg, cp, shown)
		}
		return msg
	}
	// confine returns the private copy of a workspace file, or "" for a
	// missing file that may be missing.
	confine := func(service, key, path string, required bool) (string, error) {
		shown := path // as the compose file names it: relative to its directory, or absolute
		if rel, err := filepath.Rel(dir, path); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			shown = rel
		}
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && !required {
			return "", nil
		}
		real, err := inside(rootReal, path)
		if err != nil {
			return "", fmt.Errorf("compose file %s: service %s: %s %s: %w", r.file, service, key, shown, err)
		}
		rel, err := filepath.Rel(rootReal, real)
		if err != nil {
			return "", fmt.Errorf("compose file %s: service %s: %s %s: %w", r.file, service, key, shown, err)
		}
		data, err := readRegular(root, rel)
		if err != nil {
			return "", fmt.Errorf("compose file %s: service %s: %s %s: %w (keep it a regular file inside the repository)", r.file, service, key, shown, err)
		}
		cp := filepath.Join(tmp, fmt.Sprintf("%d-%s", len(shownAs)+1, filepath.Base(rel)))
		shownAs[cp] = shown
		if err := os.WriteFile(cp, data, 0o600); err != nil {
			return "", fmt.Errorf("compose file %s: service %s: %s %s: %w", r.file, service, key, shown, err)
		}
		return cp, nil
	}
	spec := func(service string, c *types.ContainerSpec) error {
		envFiles := make([]types.EnvFile, 0, len(c.EnvFiles))
		for _, f := range c.EnvFiles {
			cp, err := confine(service, "env_file", f.Path, bool(f.Required))
			if err != nil {
				return err
			}
			if cp != "" {
				f.Path = cp
				envFiles = append(envFiles, f)
			}
		}
		c.EnvFiles = envFiles
		for i, f := range c.LabelFiles {
			cp, err := confine(service, "label_file", f, true)
			if err != nil {
				return err
			}
			c.LabelFiles[i] = cp
		}
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(proj.Services)) {
		s := proj.Services[name]
		if err := spec(name, &s.ContainerSpec); err != nil {
			return nil, err
		}
		for i := range s.PreStart {
			if err := spec(name+" (pre_start hook "+fmt.Sprint(i+1)+")", &s.PreStart[i].ContainerSpec); err != nil {
				return nil, err
			}
		}
		proj.Services[name] = s
	}
	if proj, err = proj.WithServicesEnvironmentResolved(true); err != nil {
		return nil, fmt.Errorf("compose file %s: env_file: %s", r.file, named(err))
	}
	if proj, err = proj.WithServicesLabelsResolved(true); err != nil {
		return nil, fmt.Errorf("compose file %s: label_file: %s", r.file, named(err))
	}
	return proj, nil
}

// readRegular reads name, a regular file, through root: a link on the way
// that leads out of root is refused, and a FIFO or device is not read.
func readRegular(root *os.Root, name string) ([]byte, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("is not a regular file (%s)", st.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEnvFile+1))
	if err == nil && len(data) > maxEnvFile {
		err = fmt.Errorf("is larger than %d bytes", maxEnvFile)
	}
	return data, err
}

// maxEnvFile is the size of the largest env_file or label_file an untrusted run reads.
const maxEnvFile = 1 << 20

// spec is how one compose service becomes a container.
type spec struct {
	name     string
	config   *container.Config
	host     *container.HostConfig
	networks []string // engine network names, the first one at create time
	aliases  map[string][]string
	ports    []int // container ports to publish on 127.0.0.1
	// completes is set when a dependent waits for service_completed_successfully.
	completes bool
	// tests marks the ExitCodeFrom service: it must exit, and its code decides the run.
	tests bool
}

// plan checks everything that can be checked without the engine's objects
// (images, checks, unsupported settings) and turns services into specs, so
// that a mistake is reported before anything is created.
func (r *run) plan(ctx context.Context, proj *types.Project) (map[string]*spec, error) {
	specs := map[string]*spec{}
	for _, name := range slices.Sorted(maps.Keys(proj.Services)) {
		sp, err := r.planService(ctx, proj, proj.Services[name])
		if errors.Is(err, errNeedsBuild) {
			return nil, fmt.Errorf("compose file %s: service %s has a build section: build it first (the pipeline's build stage does) and pass its image ID", r.file, name)
		}
		if errors.Is(err, errOutsideRoot) {
			return nil, fmt.Errorf("compose file %s: service %s: %w", r.file, name, err)
		}
		if err != nil {
			return nil, fmt.Errorf("compose file %s: service %s: %w", r.file, name, err)
		}
		specs[name] = sp
	}
	if t := r.o.ExitCodeFrom; t != "" {
		sp := specs[t]
		if sp == nil {
			return nil, fmt.Errorf("integration: exit_code_from names service %q, which is not in compose file %s (services: %s)", t, r.file, strings.Join(slices.Sorted(maps.Keys(specs)), ", "))
		}
		sp.completes, sp.tests = true, true
	}
	for name, s := range proj.Services {
		for dep, d := range s.DependsOn {
			target := specs[dep]
			if target == nil {
				continue // an optional dependency that is not enabled
			}
			switch d.Condition {
			case types.ServiceConditionCompletedSuccessfully:
				target.completes = true
			case types.ServiceConditionHealthy:
				if hc := proj.Services[dep].HealthCheck; hc != nil && (hc.Disable || slices.Equal(hc.Test, []string{"NONE"})) {
					return nil, fmt.Errorf("compose file %s: service %s waits for %s to be healthy, but %s disables its healthcheck (enable it, or use condition service_started)", r.file, name, dep, dep)
				}
			}
		}
	}
	for i, c := range r.o.Checks {
		sp := specs[c.Service]
		switch {
		case sp == nil:
			return nil, fmt.Errorf("integration check %d: service %q is not in compose file %s (services: %s)", i+1, c.Service, r.file, strings.Join(slices.Sorted(maps.Keys(specs)), ", "))
		case c.ContainerPort < 1 || c.ContainerPort > 65535:
			return nil, fmt.Errorf("integration check %d (%s): container port %d is out of range (use the port the service listens on, 1-65535)", i+1, c.Service, c.ContainerPort)
		case c.Path != "" && !strings.HasPrefix(c.Path, "/"):
			return nil, fmt.Errorf("integration check %d (%s): path %q must start with /", i+1, c.Service, c.Path)
		case c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599):
			return nil, fmt.Errorf("integration check %d (%s): expected status %d is not an HTTP status (use 100-599)", i+1, c.Service, c.ExpectStatus)
		}
		if !slices.Contains(sp.ports, c.ContainerPort) {
			sp.ports = append(sp.ports, c.ContainerPort)
		}
	}
	return specs, nil
}

func (r *run) planService(ctx context.Context, proj *types.Project, s types.ServiceConfig) (*spec, error) {
	image, err := r.image(ctx, s)
	if err != nil {
		return nil, err
	}
	if s.NetworkMode != "" {
		return nil, fmt.Errorf("network_mode %q is not supported in integration runs (remove it: services share the project's own network)", s.NetworkMode)
	}
	labels := map[string]string{}
	maps.Copy(labels, s.Labels)
	labels[Label] = r.o.Project
	labels[labelService] = s.Name

	sp := &spec{
		name: s.Name,
		config: &container.Config{
			Image:       image,
			Env:         env(s.Environment),
			Cmd:         s.Command,
			Entrypoint:  s.Entrypoint,
			WorkingDir:  s.WorkingDir,
			User:        s.User,
			Labels:      labels,
			Healthcheck: health(s.HealthCheck),
		},
		host:    &container.HostConfig{Init: s.Init, ExtraHosts: s.ExtraHosts.AsList(":")},
		aliases: map[string][]string{},
	}
	for _, p := range s.Ports {
		if p.Protocol != "" && p.Protocol != "tcp" {
			continue // checks are HTTP; UDP ports are not needed
		}
		if port := int(p.Target); !slices.Contains(sp.ports, port) {
			sp.ports = append(sp.ports, port)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(s.Networks)) {
		n, ok := proj.Networks[key]
		if !ok {
			return nil, fmt.Errorf("network %s is not declared under networks: (declare it)", key)
		}
		if n.External {
			return nil, fmt.Errorf("network %s is external; integration runs are isolated and cannot join it (remove external: for the test stack)", key)
		}
		sp.networks = append(sp.networks, n.Name)
		aliases := []string{s.Name}
		if cfg := s.Networks[key]; cfg != nil {
			aliases = append(aliases, cfg.Aliases...)
		}
		sp.aliases[n.Name] = aliases
	}
	for _, v := range s.Volumes {
		m, err := r.volumeMount(proj, v)
		if err != nil {
			return nil, err
		}
		sp.host.Mounts = append(sp.host.Mounts, m)
	}
	for _, t := range s.Tmpfs {
		sp.host.Mounts = append(sp.host.Mounts, mount.Mount{Type: mount.TypeTmpfs, Target: t})
	}
	return sp, nil
}

// errNeedsBuild: the service is built from source and the build stage gave no image for it.
var errNeedsBuild = errors.New("service has a build section and no built image")

// image is the image ID the service runs: the build stage's, or its compose
// image: when it has no build section. Run never builds or pulls.
func (r *run) image(ctx context.Context, s types.ServiceConfig) (string, error) {
	if id := r.o.Images[s.Name]; id != "" {
		return r.rt.ImageID(ctx, id)
	}
	if s.Build != nil {
		if r.o.Root == "" {
			return "", errNeedsBuild
		}
		return r.build(ctx, s)
	}
	if s.Image == "" {
		return "", errors.New("it has neither image: nor build: (add one)")
	}
	id, err := r.rt.ImageID(ctx, s.Image)
	if err != nil {
		return "", fmt.Errorf("%w; integration runs never pull", err)
	}
	return id, nil
}

func (r *run) volumeMount(proj *types.Project, v types.ServiceVolumeConfig) (mount.Mount, error) {
	m := mount.Mount{Target: v.Target, ReadOnly: v.ReadOnly}
	switch v.Type {
	case types.VolumeTypeVolume:
		m.Type = mount.TypeVolume
		if v.Source == "" {
			return m, nil // anonymous: removed with its container
		}
		vol, ok := proj.Volumes[v.Source]
		if !ok {
			return m, fmt.Errorf("volume %s is not declared under volumes: (declare it)", v.Source)
		}
		if vol.External {
			return m, fmt.Errorf("volume %s is external; integration runs are isolated and cannot use it (remove external: for the test stack)", v.Source)
		}
		m.Source = vol.Name
	case types.VolumeTypeBind:
		m.Type, m.Source = mount.TypeBind, v.Source
		if r.o.Untrusted {
			// A pull request controls the workspace: `./cfg` may be a link to
			// /etc or to the Docker socket. Mount only what resolves inside.
			real, err := inside(r.o.Root, v.Source)
			if err != nil {
				return m, fmt.Errorf("bind mount %s: %w", v.Source, err)
			}
			m.Source = real
		}
	case types.VolumeTypeTmpfs:
		m.Type = mount.TypeTmpfs
	default:
		return m, fmt.Errorf("volume %s of type %s is not supported in integration runs (use a named volume, a bind mount or tmpfs)", v.Target, v.Type)
	}
	return m, nil
}

func env(m types.MappingWithEquals) []string {
	list := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if v := m[k]; v != nil { // nil: declared without a value and unset in the environment
			list = append(list, k+"="+*v)
		}
	}
	return list
}

// health turns compose's healthcheck into the container's; nil keeps the image's own.
func health(hc *types.HealthCheckConfig) *container.HealthConfig {
	if hc == nil {
		return nil
	}
	if hc.Disable {
		return &container.HealthConfig{Test: []string{"NONE"}}
	}
	h := &container.HealthConfig{Test: hc.Test}
	dur := func(d *types.Duration) time.Duration {
		if d == nil {
			return 0
		}
		return time.Duration(*d)
	}
	h.Interval, h.Timeout, h.StartPeriod, h.StartInterval = dur(hc.Interval), dur(hc.Timeout), dur(hc.StartPeriod), dur(hc.StartInterval)
	if hc.Retries != nil {
		h.Retries = int(*hc.Retries)
	}
	return h
}

// portBindings publishes each port on 127.0.0.1 with an ephemeral host port:
// compose's host ports are ignored, as they may clash with other runs.
func portBindings(ports []int) (network.PortSet, network.PortMap) {
	set, bindings := network.PortSet{}, network.PortMap{}
	for _, p := range ports {
		port, _ := network.PortFrom(uint16(p), network.TCP)
		set[port] = struct{}{}
		bindings[port] = []network.PortBinding{{HostIP: loopback, HostPort: ""}}
	}
	return set, bindings
}

// refuseInclude refuses a compose file with a top-level include (see load);
// shown names the file.
func refuseInclude(file, shown string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("compose file %s cannot be read: %w", shown, err)
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil // compose-go names the mistake
	}
	top := doc.Content[0].Content
	for i := 0; i+1 < len(top); i += 2 {
		if top[i].Value == "include" {
			return fmt.Errorf("compose file %s, line %d: include is not taken in a pull request's run: an included project reads its own .env and env_file, which the pull request controls (move the included services into the compose file)", shown, top[i].Line)
		}
	}
	return nil
}

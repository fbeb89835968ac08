package integration

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/graph"
	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// loopback is the only address ports are published on and checks connect to.
var loopback = netip.MustParseAddr("127.0.0.1")

// pollInterval is how often Run looks at a container while it waits for it.
const pollInterval = 500 * time.Millisecond

// settle is how long a service without a healthcheck must stay running to count as ready.
const settle = time.Second

// up creates the project's networks and volumes, then each service's
// container in depends_on order, and waits for each to be ready before its
// dependents start.
func (r *run) up(ctx context.Context, proj *types.Project, specs map[string]*spec) error {
	engine := r.rt.EngineClient()
	labels := map[string]string{Label: r.o.Project}

	used := map[string]bool{}
	for _, sp := range specs {
		for _, n := range sp.networks {
			used[n] = true
		}
	}
	for _, key := range slices.Sorted(maps.Keys(proj.Networks)) {
		n := proj.Networks[key]
		if !used[n.Name] {
			continue
		}
		_, err := engine.NetworkCreate(ctx, n.Name, client.NetworkCreateOptions{
			Driver: n.Driver, Internal: n.Internal, Options: n.DriverOpts, Labels: merge(n.Labels, labels),
		})
		if err != nil {
			return fmt.Errorf("%s: create network %s: %s%s", r.what(), n.Name, engineMessage(err), leftoverHint(err, r.o.Project))
		}
		r.progress("network %s created", n.Name)
	}
	for _, key := range slices.Sorted(maps.Keys(proj.Volumes)) {
		v := proj.Volumes[key]
		if v.External {
			continue
		}
		_, err := engine.VolumeCreate(ctx, client.VolumeCreateOptions{
			Name: v.Name, Driver: v.Driver, DriverOpts: v.DriverOpts, Labels: merge(v.Labels, labels),
		})
		if err != nil {
			return fmt.Errorf("%s: create volume %s: %s", r.what(), v.Name, engineMessage(err))
		}
		r.progress("volume %s created", v.Name)
	}

	return graph.InDependencyOrder(ctx, proj, func(ctx context.Context, name string, _ types.ServiceConfig) error {
		if err := r.startService(ctx, specs[name]); err != nil {
			return fmt.Errorf("%s: service %s: %w", r.what(), name, err)
		}
		return nil
	})
}

func (r *run) startService(ctx context.Context, sp *spec) error {
	if err := ctx.Err(); err != nil {
		return err // a dependency failed: the walk still visits its dependents
	}
	engine := r.rt.EngineClient()
	st := r.state(sp.name)
	cfg, host := *sp.config, *sp.host
	cfg.ExposedPorts, host.PortBindings = portBindings(sp.ports)
	netcfg := &network.NetworkingConfig{}
	if len(sp.networks) > 0 {
		first := sp.networks[0]
		netcfg.EndpointsConfig = map[string]*network.EndpointSettings{first: {Aliases: sp.aliases[first]}}
		host.NetworkMode = container.NetworkMode(first)
	}
	name := r.o.Project + "-" + sp.name + "-1"
	created, err := engine.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: &cfg, HostConfig: &host, NetworkingConfig: netcfg})
	if err != nil {
		return fmt.Errorf("create container %s: %s%s", name, engineMessage(err), leftoverHint(err, r.o.Project))
	}
	r.mu.Lock()
	st.id = created.ID
	r.mu.Unlock()
	// Engines before API 1.44 take one network at create time; join the others before start.
	for _, n := range sp.networks[min(1, len(sp.networks)):] {
		_, err := engine.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: created.ID, EndpointConfig: &network.EndpointSettings{Aliases: sp.aliases[n]}})
		if err != nil {
			return fmt.Errorf("connect container %s to network %s: %s", name, n, engineMessage(err))
		}
	}
	if _, err := engine.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %s", name, engineMessage(err))
	}
	info, err := engine.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect container %s: %s", name, engineMessage(err))
	}
	ports := hostPorts(info.Container)
	r.mu.Lock()
	st.hostPorts = ports
	r.mu.Unlock()
	r.progress("service %s started (container %s%s)", sp.name, name, describePorts(ports))

	began := time.Now()
	how, err := r.waitReady(ctx, sp, created.ID)
	if err != nil {
		return err
	}
	r.mu.Lock()
	st.healthy = true
	r.mu.Unlock()
	r.progress("service %s %s after %s", sp.name, how, time.Since(began).Round(100*time.Millisecond))
	return nil
}

// waitReady polls the container until it is ready and says how: healthy,
// running (no healthcheck), or completed (exited 0).
func (r *run) waitReady(ctx context.Context, sp *spec, id string) (string, error) {
	// Left set on failure, so that a cancellation names what it interrupted.
	r.setWaiting(sp.name, true)
	engine := r.rt.EngineClient()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var runningSince time.Time
	for {
		info, err := engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", fmt.Errorf("inspect: %s", engineMessage(err))
		}
		s := info.Container.State
		exited := s != nil && !s.Running && (s.Status == container.StateExited || s.Status == container.StateDead)
		switch {
		case s == nil:
		case exited && sp.tests:
			r.setWaiting(sp.name, false)
			st := r.state(sp.name)
			r.mu.Lock()
			st.exited, st.exitCode = true, s.ExitCode
			r.mu.Unlock()
			if s.ExitCode != 0 {
				return "", fmt.Errorf("%w: test service %s exited with code %d%s", ErrTestsFailed, sp.name, s.ExitCode, r.logTail(ctx, id))
			}
			return "passed (exit code 0)", nil
		case exited && s.ExitCode == 0 && (sp.completes || s.Health == nil):
			r.setWaiting(sp.name, false)
			return "completed", nil
		case exited:
			return "", fmt.Errorf("exited with code %d%s", s.ExitCode, r.logTail(ctx, id))
		case sp.completes:
			// still running; its dependents wait for it to finish
		case s.Health != nil && s.Health.Status == container.Healthy:
			r.setWaiting(sp.name, false)
			return "healthy", nil
		case s.Health != nil && s.Health.Status == container.Unhealthy:
			return "", fmt.Errorf("became unhealthy%s%s", lastProbe(s.Health), r.logTail(ctx, id))
		case s.Health == nil && s.Running:
			// Without a healthcheck, "running" is only believed once it has
			// lasted: a process that fails at start-up exits within moments.
			if runningSince.IsZero() {
				runningSince = time.Now()
			}
			if time.Since(runningSince) >= settle {
				r.setWaiting(sp.name, false)
				return "running (no healthcheck)", nil
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
	}
}

// lastProbe quotes the last healthcheck's output, which usually says what is wrong.
func lastProbe(h *container.Health) string {
	if len(h.Log) == 0 || h.Log[len(h.Log)-1] == nil {
		return ""
	}
	p := h.Log[len(h.Log)-1]
	out := strings.TrimSpace(p.Output)
	if len(out) > 200 {
		out = out[:200] + "…"
	}
	return fmt.Sprintf(" (last healthcheck: exit %d: %s)", p.ExitCode, out)
}

// logTail is the container's last few log lines, for a failure message.
func (r *run) logTail(ctx context.Context, id string) string {
	lines, err := r.rt.LastLogLines(context.WithoutCancel(ctx), id, 5)
	if err != nil || len(lines) == 0 {
		return ""
	}
	return "\n  last log lines: " + strings.Join(lines, " | ")
}

func hostPorts(c container.InspectResponse) map[int]int {
	ports := map[int]int{}
	if c.NetworkSettings == nil {
		return ports
	}
	for port, bindings := range c.NetworkSettings.Ports {
		if port.Proto() != network.TCP {
			continue
		}
		for _, b := range bindings {
			if b.HostIP.IsValid() && b.HostIP != loopback {
				continue
			}
			if p, err := strconv.Atoi(b.HostPort); err == nil && p > 0 {
				ports[int(port.Num())] = p
				break
			}
		}
	}
	return ports
}

func describePorts(ports map[int]int) string {
	var parts []string
	for _, cp := range slices.Sorted(maps.Keys(ports)) {
		parts = append(parts, fmt.Sprintf("127.0.0.1:%d→%d", ports[cp], cp))
	}
	if len(parts) == 0 {
		return ""
	}
	return ", " + strings.Join(parts, ", ")
}

func merge(a, b map[string]string) map[string]string {
	m := maps.Clone(a)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, b)
	return m
}

// engineMessage is the engine's error text, without the client's wrapping of a lost connection.
func engineMessage(err error) string {
	if client.IsErrConnectionFailed(err) {
		return "the Docker engine stopped answering"
	}
	return strings.TrimSpace(err.Error())
}

// leftoverHint explains a name conflict: objects of an earlier run with the same project.
func leftoverHint(err error, project string) string {
	if !cerrdefs.IsConflict(err) && !strings.Contains(err.Error(), "already exists") {
		return ""
	}
	return fmt.Sprintf(" (objects of an earlier run of project %s remain: use a new project name, or remove them with integration.Teardown)", project)
}

// sweep fails when a service stopped with an error after it was ready, for
// instance while the checks ran: passing checks do not excuse a crash.
func (r *run) sweep(ctx context.Context) error {
	r.mu.Lock()
	ids := map[string]string{}
	for name, st := range r.services {
		ids[name] = st.id
	}
	r.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(ids)) {
		info, err := r.rt.EngineClient().ContainerInspect(ctx, ids[name], client.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("%s: service %s: inspect: %s", r.what(), name, engineMessage(err))
		}
		if s := info.Container.State; s != nil && !s.Running && s.ExitCode != 0 {
			r.mu.Lock()
			r.services[name].healthy = false
			r.mu.Unlock()
			return fmt.Errorf("%s: service %s exited with code %d after it was ready%s", r.what(), name, s.ExitCode, r.logTail(ctx, ids[name]))
		}
	}
	return nil
}

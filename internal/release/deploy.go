package release

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
)

// localRun is one deployment on the local platform: the recipe every
// caller shares (lease → reconcile → check ports → revision → deploy).
type localRun struct {
	cfg      *config.Config // m.Config, or Up's variant of it
	command  string         // who holds the lease: "cutover deploy"
	wait     bool
	timeout  time.Duration
	retain   bool // prune old revisions' images after a success
	revision func(ctx context.Context, rt *docker.Runtime) (store.Revision, error)
}

// deployLocal runs r under the environment's lease, after reconciling a
// deployment left behind by a killed controller.
func (m *Manager) deployLocal(ctx context.Context, env string, r localRun) (store.Deployment, error) {
	// A secret without a value fails before anything is built or started.
	if _, err := m.secrets().Lookup(env, r.cfg.SecretNames()); err != nil {
		return store.Deployment{}, err
	}
	rt, err := m.runtime(ctx)
	if err != nil {
		return store.Deployment{}, err
	}
	pc, err := m.startedProxy(ctx)
	if err != nil {
		return store.Deployment{}, err
	}
	var d store.Deployment
	err = m.withLease(ctx, env, r.command, r.wait, rt, pc, func(ctx context.Context) error {
		if err := local.CheckPorts(ctx, pc, r.cfg, env); err != nil {
			return err
		}
		rev, err := r.revision(ctx, rt)
		if err != nil {
			return err
		}
		ctrl := m.controller(r.cfg, env, rt, pc, r.timeout)
		if d, err = ctrl.Deploy(ctx, rev); err != nil {
			return err
		}
		if r.retain && d.Status == store.DeploymentSucceeded {
			m.retain(ctx, rt)
		}
		return nil
	})
	return finished(d, err)
}

// finished is d with a DeploymentFailed error when it ran but did not succeed.
func finished(d store.Deployment, err error) (store.Deployment, error) {
	if err == nil && d.Status != store.DeploymentSucceeded {
		err = DeploymentFailed{d}
	}
	return d, err
}

// withLease takes the environment's lease, reconciles a deployment its
// last holder left unfinished, and runs fn under the lease's context.
func (m *Manager) withLease(ctx context.Context, env, command string, wait bool, rt *docker.Runtime, pc *proxy.Client, fn func(context.Context) error) error {
	lctx, release, err := deploy.Lock(ctx, m.Store, m.Config.Project, env, command, wait)
	if err != nil {
		return err
	}
	defer release()
	if d, err := m.controller(m.Config, env, rt, pc, 5*time.Minute).Reconcile(lctx, false); err != nil {
		return fmt.Errorf("reconciling the deployment left by a stopped cutover: %w", err)
	} else if d != nil {
		m.note("reconciled deployment %s: %s (%s)", d.ID, d.Status, d.Reason)
	}
	return fn(lctx)
}

// Reconcile finishes or rolls back a deployment of env whose controller
// died, if there is one and nobody holds the lease, so whatever looks at an
// environment finds it consistent. It does nothing for ECS environments
// (AWS drives them) or while no proxy runs (nothing routes yet).
func (m *Manager) Reconcile(ctx context.Context, env string) error {
	if _, err := m.Store.ActiveDeployment(ctx, m.Config.Project, env); err != nil || isECS(m.Config, env) {
		return nil
	}
	pc := m.proxyClient()
	if _, err := pc.Ping(ctx); err != nil {
		return nil
	}
	rt, err := m.runtime(ctx)
	if err != nil {
		return err
	}
	lctx, release, err := deploy.Lock(ctx, m.Store, m.Config.Project, env, "cutover status", false)
	if err != nil {
		return nil // a live controller drives it
	}
	defer release()
	d, err := m.controller(m.Config, env, rt, pc, 5*time.Minute).Reconcile(lctx, false)
	if err == nil && d != nil {
		m.note("reconciled deployment %s: %s (%s)", d.ID, d.Status, d.Reason)
	}
	return err
}

// Deploy records a revision and deploys it with the environment's strategy:
// of the images built from the working tree (or given in o.Images), of the
// execution's images (o.Source set, the pipeline), or a stored revision
// again (o.Revision). A deployment that ran but did not succeed is returned
// with a DeploymentFailed error.
func (m *Manager) Deploy(ctx context.Context, env string, o DeployOptions) (store.Deployment, error) {
	if _, err := m.environment(env); err != nil {
		return store.Deployment{}, err
	}
	for name := range o.Images {
		if _, ok := m.Config.Services[name]; !ok {
			return store.Deployment{}, m.unknownService(name)
		}
	}
	o.Timeout = orDefault(o.Timeout, 5*time.Minute)
	command := cmp.Or(o.Command, "cutover deploy")
	if o.Revision != "" && len(o.Images) > 0 {
		return store.Deployment{}, UsageError{"a stored revision is deployed as it is: give Revision or Images, not both"}
	}
	if o.Revision != "" {
		rev, err := m.revisionOf(ctx, env, o.Revision)
		if err != nil {
			return store.Deployment{}, err
		}
		return m.redeploy(ctx, env, rev, command, o.Wait, o.Timeout)
	}
	if isECS(m.Config, env) {
		o.Command = command
		return finished(m.deployECS(ctx, env, o))
	}
	if o.Diff {
		return store.Deployment{}, UsageError{fmt.Sprintf("--diff shows task definition changes on platform ecs; environment %s is on platform local", env)}
	}
	cfg := m.Config
	return m.deployLocal(ctx, env, localRun{cfg: cfg, command: command, wait: o.Wait, timeout: o.Timeout, retain: o.Source == "",
		revision: func(ctx context.Context, rt *docker.Runtime) (store.Revision, error) {
			images, source := o.Images, o.Source
			if source == "" {
				// Build what was not given; the rest is inspected.
				var err error
				if images, err = m.buildImages(ctx, rt, cfg, o.Images); err != nil {
					return store.Revision{}, err
				}
				source = WorkingTreeSource(ctx, cfg.Dir())
				if len(o.Images) == len(cfg.Services) {
					source = "images"
				}
			}
			rev := local.NewRevision(cfg, env, images, source)
			return rev, m.Store.CreateRevision(ctx, rev)
		}})
}

// redeploy deploys a stored revision again through the environment's strategy, without a build.
func (m *Manager) redeploy(ctx context.Context, env string, rev store.Revision, command string, wait bool, timeout time.Duration) (store.Deployment, error) {
	if isECS(m.Config, env) {
		return finished(m.openECS(env).deploy(ctx, rev, command, wait, timeout))
	}
	return m.deployLocal(ctx, env, localRun{cfg: m.Config, command: command, wait: wait, timeout: timeout,
		revision: func(context.Context, *docker.Runtime) (store.Revision, error) { return rev, nil }})
}

// Up builds every service, starts it beside any running tasks and moves
// all traffic to it as soon as it is healthy: a blue/green deployment
// without hooks, steps or waits.
func (m *Manager) Up(ctx context.Context, env string, o UpOptions) (UpResult, error) {
	e, err := m.environment(env)
	if err != nil {
		return UpResult{}, err
	}
	if e.Platform != config.PlatformLocal {
		return UpResult{}, fmt.Errorf("%s: environments.%s.platform %q: deployments on %s are not available yet (use platform: local)", m.configFile(), env, e.Platform, e.Platform)
	}
	cfg := upConfig(m.Config, env)
	d, err := m.deployLocal(ctx, env, localRun{cfg: cfg, command: "cutover up", wait: o.Wait, timeout: orDefault(o.Timeout, 2*time.Minute), retain: true,
		revision: func(ctx context.Context, rt *docker.Runtime) (store.Revision, error) {
			images, err := m.buildImages(ctx, rt, cfg, nil)
			if err != nil {
				return store.Revision{}, err
			}
			rev := local.NewRevision(cfg, env, images, WorkingTreeSource(ctx, cfg.Dir()))
			return rev, m.Store.CreateRevision(ctx, rev)
		}})
	if err != nil {
		return UpResult{}, err
	}
	return UpResult{Project: m.Config.Project, Environment: env, Revision: d.Revision, Deployment: d.ID,
		URL: e.Listen.ProductionURL() + "/", TestURL: e.Listen.TestURL() + "/"}, nil
}

// upConfig is cfg with env's strategy replaced by the fastest safe one:
// blue/green, all at once as soon as the new set is healthy, no hooks.
func upConfig(cfg *config.Config, env string) *config.Config {
	c := *cfg
	c.Environments = maps.Clone(cfg.Environments)
	e := *c.Environments[env]
	e.Strategy = config.Strategy{
		Type: config.StrategyBlueGreen, Traffic: config.TrafficAllAtOnce,
		MinimumHealthyPercent: 100, MaximumPercent: 200,
		AutoRollback: config.AutoRollback{OnFailure: true, OnAlarm: true, OnStop: true},
	}
	e.Hooks = config.Hooks{}
	c.Environments[env] = &e
	return &c
}

// Down removes the environment's routes and tasks.
func (m *Manager) Down(ctx context.Context, env string) (DownResult, error) {
	if _, err := m.environment(env); err != nil {
		return DownResult{}, err
	}
	rt, err := m.runtime(ctx)
	if err != nil {
		return DownResult{}, err
	}
	lctx, release, err := deploy.Lock(ctx, m.Store, m.Config.Project, env, "cutover down", false)
	if err != nil {
		return DownResult{}, err
	}
	defer release()
	// Decide, persist, act: a deployment a killed controller left in
	// progress is recorded as ended before anything is removed, or the next
	// command's reconcile would roll it back and start the original set again.
	// (On ECS, AWS runs the deployment: it is not this command's to end.)
	if d, err := endForDown(lctx, m, env); err != nil {
		return DownResult{}, err
	} else if d != nil {
		m.note("ended deployment %s: %s (%s)", d.ID, d.Status, d.Reason)
	}
	le := &local.Env{Config: m.Config, Name: env, Runtime: rt, Proxy: m.proxyClient(), Store: m.Store}
	if _, err := le.Proxy.Ping(ctx); err != nil {
		// No proxy runs, but its state file may still route the
		// environment: the next proxy would listen on its ports again and
		// answer 503 for tasks removed here. The proxy is the file's one
		// writer: started to take the routes out, then stopped again
		// whatever else it routes: it was stopped, and another
		// environment's listeners it opened here would serve again.
		le.Proxy = nil
		if saved, err := proxy.SavedState(m.Home); err == nil && routes(saved, local.Scope(m.Config.Project, env)+"/") {
			pc, err := m.startedProxy(ctx)
			if err != nil {
				return DownResult{}, fmt.Errorf("the load balancer's saved routes still serve %s/%s, and it could not start to remove them: %w", m.Config.Project, env, err)
			}
			le.Proxy = pc
			defer func() {
				if err := proxy.Stop(context.WithoutCancel(ctx), m.Home, 5*time.Second); err != nil {
					m.log().Warn("stopping the load balancer that down started to remove the routes", "err", err)
				}
			}()
		}
	}
	res, err := le.Down(lctx)
	return DownResult(res), err
}

// endForDown is deploy.EndForDown for a local environment, nothing on ECS.
func endForDown(ctx context.Context, m *Manager, env string) (*store.Deployment, error) {
	if isECS(m.Config, env) {
		return nil, nil
	}
	return deploy.EndForDown(ctx, m.Store, m.Config.Project, env, m.Actor)
}

// routes reports whether st has a listener or target group under scope ("project.env/").
func routes(st proxy.State, scope string) bool {
	for _, l := range st.Listeners {
		if strings.HasPrefix(l.Name, scope) {
			return true
		}
	}
	for _, g := range st.TargetGroups {
		if strings.HasPrefix(g.Name, scope) {
			return true
		}
	}
	return false
}

// WorkingTreeSource says where a build from the working tree at dir came
// from, for the revision's source: "commit abc123def456" in a clean git
// checkout, with " + uncommitted changes" when files differ from it, or
// "working tree" outside git.
func WorkingTreeSource(ctx context.Context, dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "working tree"
	}
	commit, err := gitOut(ctx, abs, "rev-parse", "--short=12", "HEAD")
	if err != nil || commit == "" {
		return "working tree"
	}
	src := "commit " + commit
	if changes, err := gitOut(ctx, abs, "status", "--porcelain", "--untracked-files=no", "--", "."); err != nil || changes != "" {
		src += " + uncommitted changes"
	}
	return src
}

func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// RepoOf finds the git repository the file (cutover.yaml) is in, and the
// file's path inside it: what the pipeline checks out and reads.
func RepoOf(ctx context.Context, file string) (top, rel string, err error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", "", err
	}
	top, err = gitOut(ctx, filepath.Dir(abs), "rev-parse", "--show-toplevel")
	if err != nil {
		return "", "", fmt.Errorf("%s is not inside a git repository (the pipeline checks out commits: `git init` and commit first)", file)
	}
	rel, err = filepath.Rel(top, abs)
	return top, rel, err
}

// CurrentBranch is the branch checked out in dir ("HEAD" when detached).
func CurrentBranch(ctx context.Context, dir string) (string, error) {
	return gitOut(ctx, dir, "rev-parse", "--abbrev-ref", "HEAD")
}

// ParseImages reads --image flags, each service=ref, into DeployOptions.Images.
func ParseImages(flags []string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range flags {
		name, ref, ok := strings.Cut(f, "=")
		if !ok || name == "" || ref == "" {
			return nil, UsageError{fmt.Sprintf("--image %q: write service=image (for example backend=registry/app@sha256:...)", f)}
		}
		out[name] = ref
	}
	return out, nil
}

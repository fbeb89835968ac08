package release

// The pipeline's side: the engine wired to this machine, whose deploy
// action goes through the same path as `cutover deploy`, and the
// per-execution use cases (approve, reject, cancel, retry).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/atomicfile"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/proc"
	"github.com/cutoverdev/cutover/internal/registry"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/secretstore"
	"github.com/cutoverdev/cutover/internal/store"
)

// Engine wires the pipeline to this machine: the store, Docker, the
// embedded registry (started here; stop closes it), the deploy action
// (Manager.Deploy) and the approval evidence. out receives the live log
// lines (nil: none).
func (m *Manager) Engine(ctx context.Context, out io.Writer) (*pipeline.Engine, func(), error) {
	rt, err := m.runtime(ctx)
	if err != nil {
		return nil, nil, err
	}
	if _, err := m.startedProxy(ctx); err != nil {
		return nil, nil, err
	}
	reg, err := m.startRegistry(ctx, rt)
	if err != nil {
		return nil, nil, err
	}
	eng := &pipeline.Engine{
		Store: m.Store, Runtime: rt, Home: m.Home, Output: out,
		Registry: reg.Addr(), Pusher: rt,
		Deploy:   m.deployer(),
		Evidence: m.evidence,
		Getenv:   os.Getenv,
		Log:      m.Log,
	}
	return eng, func() { _ = reg.Close(context.WithoutCancel(ctx)) }, nil
}

// Run runs the pipeline once for t, in this process. An execution that
// does not succeed is returned with an ExecutionFailed error.
func (m *Manager) Run(ctx context.Context, t pipeline.Trigger, o RunOptions) (store.Execution, error) {
	t.Project = m.Config.Project
	eng, stop, err := m.Engine(ctx, o.Output)
	if err != nil {
		return store.Execution{}, err
	}
	defer stop()
	return ranOK(eng.Run(ctx, t))
}

// ExecutionFailed is returned by Run and Retry, beside the execution, when
// it ran but did not succeed.
type ExecutionFailed struct{ Execution store.Execution }

func (e ExecutionFailed) Error() string {
	return fmt.Sprintf("execution %s %s: %s", e.Execution.ID, e.Execution.Status, e.Execution.Error)
}

func ranOK(x store.Execution, err error) (store.Execution, error) {
	if err == nil && x.Status != store.ExecutionSucceeded {
		err = ExecutionFailed{x}
	}
	return x, err
}

// Retry runs an execution's commit again, from its first stage or from o.Stage.
func (m *Manager) Retry(ctx context.Context, executionID string, o RetryOptions) (store.Execution, error) {
	old, err := m.execution(ctx, executionID)
	if err != nil {
		return old, err
	}
	t, err := pipeline.RetryTrigger(old, o.Stage)
	if err != nil {
		return store.Execution{}, err
	}
	eng, stop, err := m.Engine(ctx, o.Output)
	if err != nil {
		return store.Execution{}, err
	}
	defer stop()
	return ranOK(eng.Run(ctx, t))
}

// Approve lets the deployment an execution waits for go ahead. The role,
// the environment's approval.approvers and approval.role and
// approval.forbid_author are checked in pipeline.Decide, the one place
// both the API and the CLI decide, against m.Config (never the commit's own).
func (m *Manager) Approve(ctx context.Context, executionID string, d Decision) (store.Approval, error) {
	return pipeline.Decide(ctx, m.Store, m.Config, d.Who, executionID, true, d.Comment)
}

// Reject refuses the deployment an execution waits for; the execution fails.
func (m *Manager) Reject(ctx context.Context, executionID string, d Decision) (store.Approval, error) {
	return pipeline.Decide(ctx, m.Store, m.Config, d.Who, executionID, false, d.Comment)
}

// Cancel asks a running or waiting execution to stop (running commands are
// stopped, a deployment in progress is rolled back), as m.Actor. One whose
// process is gone (a killed `cutover run`) is ended here (Engine.Cancel).
func (m *Manager) Cancel(ctx context.Context, executionID string) (store.Execution, error) {
	x, err := m.execution(ctx, executionID)
	if err != nil {
		return store.Execution{}, err
	}
	eng := &pipeline.Engine{Store: m.Store, Home: m.Home, Log: m.log()}
	orphan := pipeline.Orphaned(x)
	if orphan {
		// Its commands' containers are removed too: that needs the engine.
		if eng.Runtime, err = m.runtime(ctx); err != nil {
			return x, fmt.Errorf("execution %s: the process that ran it (pid %d) is gone; ending what it left needs the Docker engine: %w", x.ID, x.OwnerPID, err)
		}
	}
	x, err = eng.Cancel(ctx, executionID, m.Actor)
	if err != nil || !orphan {
		return x, err
	}
	// A deployment it was making is stopped and rolled back, as a cancel
	// of a live execution does it (its controller died with the process).
	tag := "execution " + x.ID
	for _, env := range m.Config.EnvironmentNames() {
		if d, err := m.Store.ActiveDeployment(ctx, m.Config.Project, env); err == nil && strings.Contains(d.Owner, tag) {
			if _, err := m.Stop(ctx, env); err != nil {
				return x, fmt.Errorf("execution %s cancelled, but stopping its deployment %s of %s failed: %w (run `cutover stop %s`)", x.ID, d.ID, env, err, env)
			}
		}
	}
	return x, nil
}

// execution is the project's execution id. Another project's, which a
// store shared by two projects' homes holds too, is answered as a missing
// one: its name, logs and commit are that project's (pipeline.Decide
// answers the same).
func (m *Manager) execution(ctx context.Context, id string) (store.Execution, error) {
	x, err := m.Store.GetExecution(ctx, id)
	if err != nil {
		return store.Execution{}, err
	}
	if x.Project != m.Config.Project {
		return store.Execution{}, store.NoExecution(id)
	}
	return x, nil
}

// deployer is the pipeline's deploy action: Deploy with the execution's
// configuration and images, waiting for the lease, its progress logged.
func (m *Manager) deployer() pipeline.Deployer {
	return func(ctx context.Context, cfg *config.Config, env string, images map[string]string, source string, logf func(string)) (store.Deployment, error) {
		actor := pipeline.DeployOwner(ctx, m.Actor) // who caused the execution, and the tag a cancel finds it by
		x := m.As(actor)
		x.Config = cfg
		x.Progress = func(ev deploy.Event) {
			switch ev.Kind {
			case "progress":
			case KindNote:
				logf(ev.Message)
			default:
				logf(fmt.Sprintf("%s: %s", ev.Phase, ev.Message))
			}
		}
		d, err := x.Deploy(ctx, env, DeployOptions{Images: images, Source: source, Wait: true, Command: "cutover run"})
		if df := (DeploymentFailed{}); errors.As(err, &df) {
			return df.Deployment, nil // the action reads the outcome from the deployment
		}
		return d, err
	}
}

// StagingEvidence is what an approval shows about the environment promoted
// from: its load balancer figures, target health, recent deployment events
// and the last log lines of its tasks.
type StagingEvidence struct {
	Environment string `json:"environment"`
	// Revision is the one env served when the approval was asked; Warning
	// says when that is not the revision that ran the commit to approve
	// (staging redeployed since, or never given this commit), whose
	// figures and logs these then are not.
	Revision     string              `json:"revision,omitempty"`
	Warning      string              `json:"warning,omitempty"`
	LoadBalancer []GroupFigures      `json:"load_balancer"`
	Events       []store.Event       `json:"events"`
	Deployments  []store.Deployment  `json:"deployments"`
	Logs         map[string][]string `json:"logs"`
}

// GroupFigures are one target group's load balancer figures.
type GroupFigures struct {
	Group     string  `json:"group"`
	Requests  uint64  `json:"requests"`
	P95       float64 `json:"p95_seconds"`
	ErrorRate float64 `json:"error_rate"` // 5xx and connect failures (stats.GroupStats.ErrorRate)
	// ConnectFailed are requests that could not connect to the group's
	// targets and were sent to another target.
	ConnectFailed uint64 `json:"connect_failed,omitempty"`
	Healthy       int    `json:"healthy"`
	Unhealthy     int    `json:"unhealthy"`
}

// evidence is the StagingEvidence of env, which ran the commit to approve
// as revision (or did not, when revision is "").
func (m *Manager) evidence(ctx context.Context, cfg *config.Config, env, revision string) any {
	ev := StagingEvidence{Environment: env, Logs: map[string][]string{}}
	if es, err := m.Store.GetEnvState(ctx, cfg.Project, env); err == nil && es.Status == "up" {
		ev.Revision = es.Revision
	}
	switch {
	case revision == "":
		ev.Warning = fmt.Sprintf("%s has not run this commit: the figures, events and logs below are of what it serves (revision %s), not of the commit to approve",
			env, cmp.Or(ev.Revision, "none"))
	case ev.Revision != revision:
		ev.Warning = fmt.Sprintf("%s ran this commit as revision %s but now serves %s: the figures, events and logs below are of %s",
			env, revision, cmp.Or(ev.Revision, "nothing"), cmp.Or(ev.Revision, "no revision"))
	}
	scope := local.Scope(cfg.Project, env) + "/"
	if st, err := m.proxyClient().Stats(ctx); err == nil {
		for _, gs := range st.Groups {
			if strings.HasPrefix(gs.Group, scope) {
				ev.LoadBalancer = append(ev.LoadBalancer, GroupFigures{gs.Group, gs.Requests, gs.P95, gs.ErrorRate(), gs.ConnectFailed, gs.Healthy, gs.Unhealthy})
			}
		}
	}
	if evs, err := m.Store.ListEvents(ctx, store.EventFilter{Project: cfg.Project, Environment: env}); err == nil {
		if len(evs) > 20 {
			evs = evs[len(evs)-20:]
		}
		ev.Events = evs
	}
	if ds, err := m.Store.ListDeployments(ctx, cfg.Project, env, 3); err == nil {
		ev.Deployments = ds
	}
	secrets, _ := secretstore.Open(m.Home, cfg.Project).Values(env)
	if rt, err := m.runtime(ctx); err == nil {
		if tasks, err := rt.ListTasks(ctx, docker.Labels{Project: cfg.Project, Environment: env}); err == nil {
			for _, t := range tasks {
				if lines, err := rt.LastLogLines(ctx, t.ID, 10); err == nil {
					for i := range lines {
						lines[i] = secretstore.Mask(lines[i], secrets) // the evidence is stored with the approval and shown
					}
					ev.Logs[t.Name] = lines
				}
			}
		}
	}
	return ev
}

// startRegistry serves the embedded registry from $CUTOVER_HOME/registry on
// the loopback address it used last time, so pushed references stay valid
// across runs; a new port is picked (and kept) when that one is taken.
// When this home's registry already serves there (a `cutover serve`, or
// another `cutover run`, of the same home), it is used as it is: the
// address, and the references pushed to it, stay those of that registry.
//
// Pushes need the credential kept in $CUTOVER_HOME/registry.credential
// (0600, generated once); the Docker runtime is given it, so cutover's own
// pushes and pulls authenticate without any setup. Deletes stay off.
func (m *Manager) startRegistry(ctx context.Context, rt *docker.Runtime) (runningRegistry, error) {
	cred, err := registry.LoadCredential(m.Home)
	if err != nil {
		return nil, err
	}
	o := registry.Options{Dir: filepath.Join(m.Home, "registry"), Credential: cred}
	r, err := startRegistryAt(ctx, o, filepath.Join(m.Home, "registry.addr"))
	if err != nil {
		return nil, err
	}
	rt.UseRegistryCredential(r.Addr(), registry.Username, cred)
	return r, nil
}

// runningRegistry is the registry a pipeline pushes to: one this process
// started (Close stops it), or this home's registry that another process
// serves (Close leaves it running).
type runningRegistry interface {
	Addr() string
	Close(ctx context.Context) error
}

// borrowedRegistry is this home's registry served by another process.
type borrowedRegistry string

func (b borrowedRegistry) Addr() string              { return string(b) }
func (borrowedRegistry) Close(context.Context) error { return nil }

func startRegistryAt(ctx context.Context, o registry.Options, addrFile string) (runningRegistry, error) {
	if b, err := os.ReadFile(addrFile); err == nil {
		o.Addr = strings.TrimSpace(string(b))
		r, err := registry.Start(ctx, o)
		if err == nil {
			return r, nil
		}
		if servesWithCredential(ctx, o.Addr, o.Credential) {
			return borrowedRegistry(o.Addr), nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	o.Addr = ""
	r, err := registry.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(addrFile, []byte(r.Addr()+"\n"), 0o600); err != nil {
		_ = r.Close(ctx)
		return nil, err
	}
	return r, nil
}

// servesWithCredential says whether a registry at addr accepts credential
// (the registry's base endpoint answers 200 to it only): this home's own.
// The credential is sent only to a listener of this process's user: the
// recorded port may since have been taken by another user's process on
// this machine, which would be handed this home's push credential.
func servesWithCredential(ctx context.Context, addr, credential string) bool {
	if credential == "" {
		return false
	}
	if _, p, err := net.SplitHostPort(addr); err != nil {
		return false
	} else if port, err := strconv.Atoi(p); err != nil {
		return false
	} else if uid, ok := proc.ListenerUID(port); !ok || uid != os.Getuid() {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
	if err != nil {
		return false
	}
	req.SetBasicAuth(registry.Username, credential)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && resp.Header.Get("Docker-Distribution-API-Version") != ""
}

// Package release holds the use cases every caller of cutover shares — the
// command line, the pipeline's deploy action, the daemon's API and the
// dashboard: bring an environment up, deploy, roll back, stop, continue,
// promote, take it down, report its status and history; and approve,
// reject, cancel or retry a pipeline execution.
//
// A Manager is one project (one cutover.yaml, loaded once) and one state
// store. Each use case chooses the environment's platform once
// (platformOf), takes the environment's lease and reconciles a deployment
// left by a killed controller in one place (withLease), and reports
// progress through Manager.Progress as deploy.Events: this package never
// prints. The caller renders the events (a terminal, a log, a stream).
package release

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/alarm"
	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/lines"
	"github.com/cutoverdev/cutover/internal/store"
)

// Manager is one project's release use cases, for every caller (CLI,
// pipeline, daemon, dashboard). Its methods may be called concurrently for
// different environments; the environment lease serialises deployments of
// one environment, across processes too.
type Manager struct {
	Config   *config.Config
	Store    *store.Store
	Home     string             // CUTOVER_HOME: the proxy's socket, the registry's credential
	Actor    string             // who acts, recorded on deployments and requests: "alice (token)", "bob (pid 42 on host)"
	Progress func(deploy.Event) // optional: deployment events, and KindNote lines for people
	Log      *slog.Logger       // optional: warnings of the platforms
	Binary   string             // the cutover executable that runs the load balancer (`proxy keep`); default: this process's

	conns      *connections // opened on first use, closed by Close; shared by copies
	closeStore bool
}

// KindNote is the deploy.Event kind of a line for people that no controller
// phase produced: a build's output, "reconciled deployment ...", an ECS
// deployment's news. Callers that render events show its Message as it is.
const KindNote = "note"

// DeployOptions is what `cutover deploy` and the pipeline's deploy action ask for.
type DeployOptions struct {
	Images   map[string]string // service → image reference used instead of a build
	Revision string            // redeploy this stored revision (no build); Images must be empty
	Source   string            // set by the pipeline: Images name every service and are deployed as given (no build, no inspection); Source is the revision's source

	Wait    bool          // wait for a deployment already running in the environment instead of failing
	Timeout time.Duration // how long new tasks may take to become healthy (default 5m)
	Diff    bool          // platform ecs: report each service's task definition change first
	Command string        // who takes the lease, e.g. "cutover deploy" (default)
}

// UpOptions is what `cutover up` asks for.
type UpOptions struct {
	Wait    bool
	Timeout time.Duration // default 2m
}

// UpResult is an environment that is up, with where it answers.
type UpResult struct {
	Project     string `json:"project"`
	Environment string `json:"environment"`
	Revision    string `json:"revision"`
	Deployment  string `json:"deployment"`
	URL         string `json:"url"`
	TestURL     string `json:"test_url"`
}

// RollbackOptions: with To, that revision of the environment is deployed
// again (no rebuild); without it, a deployment in progress flips back, else
// the revision that ran before the last completed deployment is redeployed.
type RollbackOptions struct {
	To      string
	Timeout time.Duration
}

// DownResult is what Down removed.
type DownResult struct {
	Project      string `json:"project"`
	Environment  string `json:"environment"`
	RemovedTasks int    `json:"removed_tasks"`
}

// Decision is an approver's answer to an execution waiting for approval.
type Decision struct {
	Who     auth.Identity // checked against the role and the environment's approval policy
	Comment string
}

// Status is one environment as a dashboard overview shows it. What could
// not be read (the Docker engine, the proxy, AWS) is named in Unread; the
// rest is shown from the store.
type Status struct {
	Environment string            `json:"environment"`
	Platform    string            `json:"platform"`
	Status      string            `json:"status"`
	Revision    string            `json:"revision,omitempty"` // the revision serving production
	Serving     *store.Revision   `json:"serving,omitempty"`  // its images (digests) and source commit
	UpdatedAt   *time.Time        `json:"updated_at,omitempty"`
	Traffic     map[string]int    `json:"traffic,omitempty"`    // production traffic by color, in percent
	Deployment  *store.Deployment `json:"deployment,omitempty"` // the active one, else the last
	Progress    *Progress         `json:"progress,omitempty"`   // the active deployment's step and time left
	Alarms      []alarm.Status    `json:"alarms,omitempty"`     // as the active deployment last evaluated them
	Health      []TargetHealth    `json:"health,omitempty"`     // per service and color, at the load balancer
	Tasks       []Task            `json:"tasks"`
	Unread      []string          `json:"unread,omitempty"`
	// MissingSecrets are the secrets cutover.yaml names that a local
	// environment has no value for: its next deployment fails until they are set.
	MissingSecrets []string     `json:"missing_secrets,omitempty"`
	ECS            []ECSService `json:"ecs,omitempty"` // platform ecs: the services as AWS reports them
}

// Progress is where an active deployment stands in its phases.
type Progress struct {
	Phase     string        `json:"phase"`
	Step      int           `json:"step"`                 // N of Steps: 1-based position of Phase in the strategy's phases
	Steps     int           `json:"steps"`                // M
	PhaseLeft time.Duration `json:"phase_left,omitempty"` // time left in a timed wait (ready wait, shifting step, bake, termination wait)
	Left      time.Duration `json:"left,omitempty"`       // lower bound of the time left overall: the timed waits still ahead
}

// TargetHealth counts a service's targets of one color by state.
type TargetHealth struct {
	Service   string `json:"service"`
	Color     string `json:"color"`
	Healthy   int    `json:"healthy"`
	Unhealthy int    `json:"unhealthy"`
	Other     int    `json:"other,omitempty"` // registering, draining
}

// Task is one running task (container) of a local environment.
type Task struct {
	Service  string `json:"service"`
	Name     string `json:"name"`
	Color    string `json:"color"`
	Revision string `json:"revision"`
	State    string `json:"state"`
	HostPort int    `json:"host_port,omitempty"`
	Health   string `json:"health"`
}

// History is an environment's deployments and revisions, newest first.
type History struct {
	Deployments []HistoryDeployment `json:"deployments"`
	Revisions   []store.Revision    `json:"revisions"`
}

// HistoryDeployment is a deployment with who made it and how long it took.
type HistoryDeployment struct {
	store.Deployment
	Actor    string `json:"actor"`
	Duration string `json:"duration"` // finished minus started; "running 1m2s" while in progress
}

// DeploymentFailed is returned by the use cases that deploy when the
// deployment ran but did not succeed; the deployment is returned beside it.
type DeploymentFailed struct{ Deployment store.Deployment }

func (e DeploymentFailed) Error() string {
	d := e.Deployment
	return fmt.Sprintf("deployment %s %s: %s", d.ID, strings.ReplaceAll(d.Status, "_", " "), d.Reason)
}

// UsageError is a mistake in what the caller asked for (an unknown service,
// a flag that does not apply to the platform); the CLI maps it to usage.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// RetryOptions: Stage starts from that stage, reusing the images earlier stages built.
type RetryOptions struct {
	Stage  string
	Output io.Writer // the pipeline's log lines as they happen; nil discards them
}

// RunOptions is how a foreground pipeline run reports.
type RunOptions struct {
	Output io.Writer // the pipeline's log lines as they happen; nil discards them
}

// Open loads the project's cutover.yaml (file) once and opens the state
// store in home. Close releases what the Manager opened.
func Open(ctx context.Context, file, home string) (*Manager, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, filepath.Join(home, "cutover.db"))
	if err != nil {
		return nil, err
	}
	return &Manager{Config: cfg, Store: st, Home: home, Actor: LocalActor(), closeStore: true}, nil
}

// Close releases the store (when Open opened it) and the connections the Manager opened.
func (m *Manager) Close() {
	m.conns.close()
	if m.closeStore {
		m.Store.Close()
	}
}

// LocalActor is the OS user running this process, with the process that
// acts for it: "alice (pid 42 on host)".
func LocalActor() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s (pid %d on %s)", auth.LocalUser().Name, os.Getpid(), host)
}

// environment checks that env is one of the project's.
func (m *Manager) environment(env string) (*config.Environment, error) {
	e, ok := m.Config.Environments[env]
	if !ok {
		return nil, fmt.Errorf("%s: no environment named %q (environments: %s)", m.configFile(), env, strings.Join(m.Config.EnvironmentNames(), ", "))
	}
	return e, nil
}

func (m *Manager) configFile() string {
	if m.Config.File != "" {
		return m.Config.File
	}
	return "cutover.yaml"
}

func (m *Manager) unknownService(name string) error {
	return UsageError{fmt.Sprintf("--image %s=...: no service named %q in %s (services: %s)", name, name, m.configFile(), strings.Join(m.Config.ServiceNames(), ", "))}
}

func (m *Manager) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.New(slog.DiscardHandler)
}

// emit passes ev to Progress, if any.
func (m *Manager) emit(ev deploy.Event) {
	if m.Progress == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	m.Progress(ev)
}

// note is a line for people (KindNote).
func (m *Manager) note(format string, a ...any) {
	m.emit(deploy.Event{Kind: KindNote, Message: fmt.Sprintf(format, a...)})
}

// noteWriter turns what a tool writes (docker build, ECR push) into notes, a line each.
func (m *Manager) noteWriter() io.Writer {
	return &lines.Writer{F: func(l string) { m.note("%s", l) }}
}

// ECSService is one ECS service as DescribeServices tells it.
type ECSService struct {
	Service        string   `json:"service"`
	ECSService     string   `json:"ecs_service"`
	Status         string   `json:"status"`
	TaskDefinition string   `json:"task_definition,omitempty"`
	Desired        int      `json:"desired"`
	Running        int      `json:"running"`
	Pending        int      `json:"pending"`
	Deployments    []string `json:"deployments,omitempty"`
	TargetHealth   []string `json:"target_health,omitempty"` // color: target state, per registered target
	Error          string   `json:"error,omitempty"`

	// Site is a static service's bucket, distribution and the release it serves.
	Site *SiteStatus `json:"site,omitempty"`
}

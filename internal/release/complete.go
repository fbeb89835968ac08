package release

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/store"
)

// Choice is a value a shell may complete, with what it is.
type Choice struct{ Value, Description string }

// EnvironmentChoices are the environments of file (cutover.yaml), each with
// its platform and branch; none when it does not load.
func EnvironmentChoices(file string) []Choice {
	cfg, err := config.Load(file)
	if err != nil {
		return nil
	}
	var out []Choice
	for _, name := range cfg.EnvironmentNames() {
		env := cfg.Environments[name]
		desc := env.Platform
		if desc == "" {
			desc = "local"
		}
		if env.Branch != "" {
			desc += ", branch " + env.Branch
		}
		out = append(out, Choice{name, desc})
	}
	return out
}

// ServiceChoices are the services of file (cutover.yaml) that have logs in
// environment env (`cutover logs ENV SERVICE`), each with its port and
// route: on platform ecs not the static ones, which S3 and CloudFront
// serve. None when the file does not load or has no such environment.
func ServiceChoices(file, env string) []Choice {
	cfg, err := config.Load(file)
	if err != nil || cfg.Environments[env] == nil {
		return nil
	}
	onECS := cfg.Environments[env].Platform == config.PlatformECS
	var out []Choice
	for _, name := range cfg.ServiceNames() {
		s := cfg.Services[name]
		if onECS && s.Static != nil {
			continue
		}
		desc := fmt.Sprintf("port %d", s.Port)
		if s.Route.PathPrefix != "" {
			desc += ", route " + s.Route.PathPrefix
		}
		out = append(out, Choice{name, desc})
	}
	return out
}

// SecretChoices are the secrets file's services name, each with the
// services that get it. None when the file does not load.
func SecretChoices(file string) []Choice {
	cfg, err := config.Load(file)
	if err != nil {
		return nil
	}
	var out []Choice
	for _, name := range cfg.SecretNames() {
		out = append(out, Choice{name, "secret of " + strings.Join(cfg.SecretServices(name), ", ")})
	}
	return out
}

// ExecutionChoices are the limit most recent executions of file's project,
// newest first, with their branch, commit and status. It reads; without a
// store in the state directory home there is nothing to offer, and none is
// created.
func ExecutionChoices(ctx context.Context, file, home string, limit int) []Choice {
	if ctx == nil {
		ctx = context.Background() // a completion run outside Execute
	}
	if _, err := os.Stat(filepath.Join(home, "cutover.db")); err != nil {
		return nil
	}
	m, err := Open(ctx, file, home)
	if err != nil {
		return nil
	}
	defer m.Close()
	list, _ := m.Executions(ctx, limit)
	var out []Choice
	for _, x := range list {
		out = append(out, Choice{x.ID, fmt.Sprintf("%s %s %s", x.Branch, x.Commit[:min(7, len(x.Commit))], x.Status)})
	}
	return out
}

// ExecutionView is an execution with its approvals and what each showed
// (or shows) its approver.
type ExecutionView struct {
	store.Execution
	Approvals []store.Approval `json:"approvals"`
	// Orphaned says, for people, what to do with a running or waiting
	// execution whose process is gone (a killed `cutover run`), which
	// nothing will ever move on; "" otherwise.
	Orphaned string `json:"-"`
}

// Execution is the execution id with its approvals (never nil).
func (m *Manager) Execution(ctx context.Context, id string) (ExecutionView, error) {
	e, err := m.execution(ctx, id)
	if err != nil {
		return ExecutionView{}, err
	}
	approvals, err := m.Store.ListApprovals(ctx, e.ID)
	if approvals == nil {
		approvals = []store.Approval{}
	}
	v := ExecutionView{Execution: e, Approvals: approvals}
	if pipeline.Orphaned(e) {
		v.Orphaned = fmt.Sprintf("the process that ran it (pid %d) is gone: `cutover cancel %s` ends it, or a `cutover serve` started from now on resumes it from the stage it was in (a daemon already running looks only when it starts)", e.OwnerPID, e.ID)
	}
	return v, err
}

// Executions are the project's limit most recent executions, newest first.
func (m *Manager) Executions(ctx context.Context, limit int) ([]store.Execution, error) {
	return m.Store.ListExecutions(ctx, m.Config.Project, limit)
}

package config

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Pipeline is what runs for a commit: stages in order, each a set of
// actions; actions of one stage with the same run_order run in parallel.
// When cutover.yaml has no pipeline section, DefaultPipeline is used.
type Pipeline struct {
	Mode          string         `yaml:"mode,omitempty" json:"mode,omitempty" jsonschema:"enum=superseded,enum=queued,default=superseded" jsonschema_description:"superseded: a newer run of the same kind, branch and pull request replaces one queued or waiting at a stage entrance or approval; queued: every run waits its turn at each stage. Either way executions run concurrently, one per stage."`
	Source        *Source        `yaml:"source,omitempty" json:"source,omitempty"`
	Secrets       *Secrets       `yaml:"secrets,omitempty" json:"secrets,omitempty"`
	Notifications []Notification `yaml:"notifications,omitempty" json:"notifications,omitempty"`
	Schedule      []Schedule     `yaml:"schedule,omitempty" json:"schedule,omitempty" jsonschema_description:"Scheduled executions (nightly builds): the daemon runs the branch's head at each cron time; their images are also tagged nightly-YYYYMMDD."`
	CommitStatus  *CommitStatus  `yaml:"commit_status,omitempty" json:"commit_status,omitempty" jsonschema_description:"Report each execution on its commit through GitHub's commit status API (pending, success, failure, error), so that branch protection can require it."`
	Stages        []Stage        `yaml:"stages,omitempty" json:"stages,omitempty"`
	// TrustedBranches is read from the daemon's own cutover.yaml (never
	// from the commit a run checks out): see TrustsBranch.
	TrustedBranches []string `yaml:"trusted_branches,omitempty" json:"trusted_branches,omitempty" jsonschema_description:"Branches whose pushes run trusted (patterns such as release/*): with their own cutover.yaml, the pipeline's secrets and commands on the host. A push to any other branch runs as a pull request does: under the default branch's pipeline definition, confined, with no secrets, never deploying. Read from the daemon's cutover.yaml. Empty: every branch is trusted."`
}

// TrustsBranch says whether a push to branch runs trusted: every branch
// when TrustedBranches is empty, otherwise one a pattern matches
// (path.Match: release/* is release/1.2, not release/1/2).
func (p *Pipeline) TrustsBranch(branch string) bool {
	if p == nil || len(p.TrustedBranches) == 0 {
		return true
	}
	branch = strings.TrimPrefix(branch, "refs/heads/")
	for _, pat := range p.TrustedBranches {
		if ok, err := path.Match(pat, branch); err == nil && ok {
			return true
		}
	}
	return false
}

// Source is the git repository executions check out.
type Source struct {
	Repo string   `yaml:"repo,omitempty" json:"repo,omitempty" jsonschema_description:"Local path or URL of the git repository; default: the repository cutover.yaml is in."`
	Poll Duration `yaml:"poll,omitempty" json:"poll,omitempty" jsonschema_description:"How often the daemon polls the branches of the environments for new commits; 0 turns polling off."`
}

// Secrets are values injected at run time and masked in every log line.
// Names are looked up in the file (KEY=VALUE lines) first, then in the
// environment of the cutover process.
type Secrets struct {
	File  string   `yaml:"file,omitempty" json:"file,omitempty" jsonschema_description:"A KEY=VALUE file, relative to cutover.yaml. Keep it out of git."`
	Names []string `yaml:"names,omitempty" json:"names,omitempty" jsonschema_description:"Secret names made available to actions as environment variables."`
}

// Notification sends pipeline events to a Slack-compatible or generic webhook.
type Notification struct {
	Name      string   `yaml:"name,omitempty" json:"name,omitempty"`
	Kind      string   `yaml:"kind" json:"kind" jsonschema:"required,enum=slack,enum=webhook"`
	URLSecret string   `yaml:"url_secret" json:"url_secret" jsonschema:"required" jsonschema_description:"Name of the secret holding the webhook URL (a URL is a secret)."`
	Events    []string `yaml:"events,omitempty" json:"events,omitempty" jsonschema_description:"Event kinds to send; all when empty."`
}

// Schedule runs a branch's head at the times of a cron expression.
type Schedule struct {
	Cron   string `yaml:"cron" json:"cron" jsonschema:"required" jsonschema_description:"Standard 5-field cron expression in UTC (minute hour day-of-month month day-of-week), or a descriptor such as @daily."`
	Branch string `yaml:"branch" json:"branch" jsonschema:"required" jsonschema_description:"The branch whose head runs; it runs as a push to that branch would (its stages, its environments)."`
}

// CommitStatus reports executions to GitHub's commit status API.
type CommitStatus struct {
	Repository string `yaml:"repository" json:"repository" jsonschema:"required" jsonschema_description:"The GitHub repository, owner/name."`
	APIURL     string `yaml:"api_url,omitempty" json:"api_url,omitempty" jsonschema_description:"API base URL; default https://api.github.com/ (GitHub Enterprise: https://HOST/api/v3/)."`
	TokenEnv   string `yaml:"token_env,omitempty" json:"token_env,omitempty" jsonschema_description:"Variable of cutover's environment holding a token that may write commit statuses (default CUTOVER_GITHUB_TOKEN). Never a pipeline secret: commands do not get it."`
	Context    string `yaml:"context,omitempty" json:"context,omitempty" jsonschema_description:"The status's name on the commit (default cutover)."`
	TargetURL  string `yaml:"target_url,omitempty" json:"target_url,omitempty" jsonschema_description:"Link of the status; the execution ID is appended (e.g. https://ci.example.com/executions/)."`
}

// Stage is a named group of actions.
type Stage struct {
	Name     string   `yaml:"name" json:"name" jsonschema:"required"`
	Branches []string `yaml:"branches,omitempty" json:"branches,omitempty" jsonschema_description:"Run this stage only for pushes to these branches (all when empty). Pull requests never run deploy or approval actions."`
	Actions  []Action `yaml:"actions,omitempty" json:"actions,omitempty"`
}

// Action kinds.
const (
	ActionBuild       = "build"
	ActionTest        = "test"
	ActionIntegration = "integration"
	ActionDeploy      = "deploy"
	ActionVerify      = "verify"
	ActionApproval    = "approval"
	ActionCommand     = "command"
)

var actionKinds = []string{ActionBuild, ActionTest, ActionIntegration, ActionDeploy, ActionVerify, ActionApproval, ActionCommand}

// Action is one step of a stage.
type Action struct {
	Name         string            `yaml:"name" json:"name" jsonschema:"required"`
	Kind         string            `yaml:"kind" json:"kind" jsonschema:"required,enum=build,enum=test,enum=integration,enum=deploy,enum=verify,enum=approval,enum=command"`
	RunOrder     int               `yaml:"run_order,omitempty" json:"run_order,omitempty" jsonschema:"minimum=1,default=1"`
	Service      string            `yaml:"service,omitempty" json:"service,omitempty" jsonschema_description:"build: the service whose image it builds."`
	Environment  string            `yaml:"environment,omitempty" json:"environment,omitempty" jsonschema_description:"deploy, verify, approval: the environment."`
	Commands     []string          `yaml:"commands,omitempty" json:"commands,omitempty" jsonschema_description:"build, test, command: shell commands run in order in the workspace (the service's build context for build)."`
	Image        string            `yaml:"image,omitempty" json:"image,omitempty" jsonschema_description:"Run the commands inside this container image instead of on the host."`
	Reports      []string          `yaml:"reports,omitempty" json:"reports,omitempty" jsonschema_description:"test: JUnit XML report files (globs, relative to the workspace)."`
	Compose      string            `yaml:"compose,omitempty" json:"compose,omitempty" jsonschema_description:"integration: the compose file, relative to the workspace (default docker-compose.yml)."`
	Checks       []Check           `yaml:"checks,omitempty" json:"checks,omitempty" jsonschema_description:"integration, verify: HTTP checks."`
	ExitCodeFrom string            `yaml:"exit_code_from,omitempty" json:"exit_code_from,omitempty" jsonschema_description:"integration: a compose service that runs the tests and exits (docker compose --exit-code-from); its exit code decides the action. Built from its compose build section (inside the workspace) when the build stage did not build it."`
	Timeout      Duration          `yaml:"timeout,omitempty" json:"timeout,omitempty" jsonschema_description:"How long the action may take (approval: how long it waits; default 168h)."`
	Export       []string          `yaml:"export,omitempty" json:"export,omitempty" jsonschema_description:"command: names of variables the commands write as NAME=value lines to $CUTOVER_EXPORT, for later actions."`
	Env          map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
}

// Check is an HTTP check of an integration or verify action. For
// integration it targets a compose service's container port; for verify
// the environment's listener (production unless listener: test).
type Check struct {
	Service   string `yaml:"service,omitempty" json:"service,omitempty"`
	Port      int    `yaml:"port,omitempty" json:"port,omitempty" jsonschema_description:"integration: the service's container port (default: its port in cutover.yaml)."`
	HTTPCheck `yaml:",inline"`
}

// Pipeline modes.
const (
	ModeSuperseded = "superseded"
	ModeQueued     = "queued"
)

// EffectivePipeline is the configured pipeline, or the default one.
func (c *Config) EffectivePipeline() *Pipeline {
	if c.Pipeline != nil && len(c.Pipeline.Stages) > 0 {
		return c.Pipeline
	}
	p := DefaultPipeline(c)
	if c.Pipeline != nil { // mode, source, secrets, notifications without stages
		p.Mode, p.Source, p.Secrets, p.Notifications, p.CommitStatus, p.Schedule = c.Pipeline.Mode, c.Pipeline.Source, c.Pipeline.Secrets, c.Pipeline.Notifications, c.Pipeline.CommitStatus, c.Pipeline.Schedule
		p.TrustedBranches = c.Pipeline.TrustedBranches
		if p.Mode == "" {
			p.Mode = ModeSuperseded
		}
	}
	return p
}

// DefaultPipeline is the seeds' flow: build every service in parallel,
// integration on docker-compose.yml when the repository has one, then for
// each environment with a branch: deploy it and verify its health on
// pushes to that branch, after an approval when it requires one.
func DefaultPipeline(c *Config) *Pipeline {
	p := &Pipeline{Mode: ModeSuperseded}
	build := Stage{Name: "build"}
	for _, name := range c.ServiceNames() {
		if c.Services[name].Build != nil {
			build.Actions = append(build.Actions, Action{Name: name, Kind: ActionBuild, Service: name, RunOrder: 1})
		}
	}
	if len(build.Actions) > 0 {
		p.Stages = append(p.Stages, build)
	}
	if _, err := os.Stat(filepath.Join(c.Dir(), "docker-compose.yml")); err == nil {
		p.Stages = append(p.Stages, Stage{Name: "integration", Actions: []Action{{Name: "compose", Kind: ActionIntegration, Compose: "docker-compose.yml", RunOrder: 1}}})
	}
	// Environments promoted from another come after it.
	for _, name := range environmentOrder(c) {
		e := c.Environments[name]
		if e.Branch == "" {
			continue
		}
		st := Stage{Name: "deploy-" + name, Branches: []string{e.Branch}}
		order := 1
		if e.Approval != nil && e.Approval.Required {
			st.Actions = append(st.Actions, Action{Name: "approve", Kind: ActionApproval, Environment: name, RunOrder: order, Timeout: e.Approval.Timeout})
			order++
		}
		st.Actions = append(st.Actions, Action{Name: "deploy", Kind: ActionDeploy, Environment: name, RunOrder: order})
		var checks []Check
		for _, svc := range c.ServiceNames() {
			s := c.Services[svc]
			path := s.Route.PathPrefix
			if path == "" || path == "/" || !slices.Contains([]string{"/", ""}, s.Health.Path) && len(s.Health.Path) > len(path) {
				path = s.Health.Path
			}
			checks = append(checks, Check{Service: svc, HTTPCheck: HTTPCheck{Path: path, ExpectStatus: 200}})
		}
		st.Actions = append(st.Actions, Action{Name: "verify", Kind: ActionVerify, Environment: name, RunOrder: order + 1, Checks: checks})
		p.Stages = append(p.Stages, st)
	}
	return p
}

// environmentOrder sorts environments so that one promoted from another comes after it.
func environmentOrder(c *Config) []string {
	var out []string
	seen := map[string]bool{}
	var visit func(string, int)
	visit = func(name string, depth int) {
		if seen[name] || depth > len(c.Environments) {
			return
		}
		if from := c.Environments[name].PromoteFrom; from != "" && c.Environments[from] != nil {
			visit(from, depth+1)
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, name := range c.EnvironmentNames() {
		visit(name, 0)
	}
	return out
}

// trustedBranches refuses a deploying branch that trusted_branches leaves
// out: an untrusted branch never deploys, so the environment, the stage or
// the schedule naming it would silently never run.
func (v *validator) trustedBranches(p *Pipeline) {
	if len(p.TrustedBranches) == 0 {
		return
	}
	untrusted := func(field, branch string) {
		if branch != "" && !p.TrustsBranch(branch) {
			v.add(field, "branch %s is not among pipeline.trusted_branches, and an untrusted branch never deploys (add it there)", branch)
		}
	}
	for _, name := range v.c.EnvironmentNames() {
		untrusted("environments."+name+".branch", v.c.Environments[name].Branch)
	}
	for i, st := range p.Stages {
		for j, b := range st.Branches {
			untrusted(fmt.Sprintf("pipeline.stages[%d].branches[%d]", i, j), b)
		}
	}
	for i, s := range p.Schedule {
		untrusted(fmt.Sprintf("pipeline.schedule[%d].branch", i), s.Branch)
	}
}

func (v *validator) pipelineSettings(p *Pipeline) {
	if p.Mode != "" && p.Mode != ModeSuperseded && p.Mode != ModeQueued {
		v.add("pipeline.mode", "%q is not a mode (write superseded or queued)", p.Mode)
	}
	for i, pat := range p.TrustedBranches {
		if _, err := path.Match(pat, ""); err != nil || strings.TrimSpace(pat) == "" || strings.HasPrefix(pat, "refs/") {
			v.add(fmt.Sprintf("pipeline.trusted_branches[%d]", i), "%q is not a branch pattern (write a branch name such as main, or a pattern such as release/*)", pat)
		}
	}
	for i, n := range p.Notifications {
		np := fmt.Sprintf("pipeline.notifications[%d]", i)
		if n.Kind != "slack" && n.Kind != "webhook" {
			v.add(np+".kind", "%q is not a notification kind (write slack or webhook)", n.Kind)
		}
		if n.URLSecret == "" {
			v.add(np+".url_secret", "missing (name the secret that holds the webhook URL)")
		} else if p.Secrets == nil || !slices.Contains(p.Secrets.Names, n.URLSecret) {
			v.add(np+".url_secret", "%q is not among pipeline.secrets.names (add it there)", n.URLSecret)
		}
	}
}

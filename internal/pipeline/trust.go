package pipeline

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/mask"
	"github.com/cutoverdev/cutover/internal/proc"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/short"
	"github.com/cutoverdev/cutover/internal/source"
	"github.com/cutoverdev/cutover/internal/store"
)

// What a run may trust. A pull request is untrusted code: its commit is
// built and tested, but with the pipeline definition of its base branch
// (never its own cutover.yaml or compose files), without secrets, with its
// commands confined in containers (no network, no Docker socket), and its
// images never tagged latest or with a branch name. So is a push (or poll,
// schedule, manual run) of a branch that the daemon's
// pipeline.trusted_branches leaves out, under the default branch's
// definition. A push or manual run of a branch runs only a commit that is on
// that branch.

// noDeploy is why an untrusted run does not deploy ("" for a trusted one):
// the reason its deploy stages are skipped, and its refusal to deploy.
func (r *run) noDeploy() string {
	switch {
	case !r.untrusted:
		return ""
	case r.kind == TriggerPullRequest:
		return "pull requests do not deploy"
	}
	return r.who + " does not deploy (it is not among pipeline.trusted_branches)"
}

// untrusted decides whether t runs untrusted, and names it: a pull request,
// or a branch the trusted configuration (the daemon's own cutover.yaml; a
// foreground run has none, its operator is trusted) does not trust.
func (e *Engine) untrusted(t Trigger) (bool, string) {
	switch {
	case t.Kind == TriggerPullRequest:
		return true, "pull request"
	case t.UntrustedBranch || e.Trusted != nil && !e.Trusted.Pipeline.TrustsBranch(t.Branch):
		return true, "untrusted branch " + strings.TrimPrefix(t.Branch, "refs/heads/")
	}
	return false, ""
}

// BranchUntrusted reports whether t, a trigger of a branch (not a pull
// request, and its kind resolved), runs untrusted: the decision Run makes
// (untrusted), for the daemon to record when it queues t, so the queue
// shows it too.
func (e *Engine) BranchUntrusted(t Trigger) bool {
	u, _ := e.untrusted(t)
	return u && t.Kind != TriggerPullRequest
}

// ErrRefused is wrapped when a trigger is refused before anything runs.
var ErrRefused = errors.New("trigger refused")

// Admit decides whether t may run, before anything is recorded: a trigger
// other than a pull request runs only a commit that is on its branch (the
// head, or an ancestor for a retry or redeploy). The daemon and `cutover
// run` both go through it (Engine.Run calls it); t.Kind must be resolved
// (not TriggerRetry) and t.Commit set.
func Admit(ctx context.Context, t Trigger) error {
	switch t.Kind {
	case TriggerPullRequest:
		return nil
	case TriggerRetry:
		return fmt.Errorf("%w: a retry must carry the kind of the run it retries", ErrRefused)
	}
	if t.Branch == "" {
		return fmt.Errorf("%w: a %s trigger names no branch", ErrRefused, t.Kind)
	}
	if strings.HasPrefix(t.Branch, "refs/") && !strings.HasPrefix(t.Branch, "refs/heads/") {
		return fmt.Errorf("%w: %q is not a branch (a %s trigger names a branch, such as main; pull requests come as pull_request triggers)", ErrRefused, t.Branch, t.Kind)
	}
	if err := source.OnBranch(ctx, t.Repo, t.Branch, t.Commit); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	// A push, a polled or scheduled commit is the branch's head: an older
	// one (a replayed delivery) must not replace what is waiting for an
	// approval. Retries, resumptions and manual redeploys may run an ancestor.
	if (t.Kind == TriggerPush || t.Kind == TriggerPoll || t.Kind == TriggerSchedule) && t.RetriedFrom == "" && t.RetryOf == "" {
		head, err := source.Resolve(ctx, t.Repo, strings.TrimPrefix(t.Branch, "refs/heads/"))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
		if head != t.Commit {
			return fmt.Errorf("%w: commit %s is not the head of branch %s (the head is %s): a %s runs the branch's head; a newer one replaces it", ErrRefused, short.SHA(t.Commit), t.Branch, short.SHA(head), t.Kind)
		}
	}
	return nil
}

// mayDeploy decides whether this execution may deploy (or ask to approve a
// deployment of) env: never from a pull request, and only from the branch
// that the trusted configuration gives env.
func (r *run) mayDeploy(env string) error {
	if r.untrusted {
		return fmt.Errorf("%w: %s", ErrRefused, r.noDeploy())
	}
	trusted, which := r.e.Trusted, "the daemon's cutover.yaml"
	if trusted == nil {
		trusted, which = r.cfg, "cutover.yaml"
	}
	e, ok := trusted.Environments[env]
	switch {
	case !ok:
		return fmt.Errorf("%w: environment %s is not in %s", ErrRefused, env, which)
	case e.Branch == "":
		return fmt.Errorf("%w: environment %s has no branch in %s, so no pipeline deploys it (deploy it with `cutover deploy %s`, or give it a branch)", ErrRefused, env, which, env)
	case e.Branch != strings.TrimPrefix(r.exec.Branch, "refs/heads/"):
		return fmt.Errorf("%w: environment %s deploys from branch %s (%s); this execution is of branch %s", ErrRefused, env, e.Branch, which, r.exec.Branch)
	}
	return nil
}

// approvedFor decides whether this execution may deploy env as far as
// approvals go: when the trusted configuration (the daemon's cutover.yaml;
// a foreground run's own) requires an approval for env, one must have been
// given for env in this execution, or in the execution a retry from a later
// stage (a resumption) takes its earlier stages from. A trusted branch runs
// its commit's own definition, and a manual trigger may run an ancestor of
// the branch's head: a commit from before the approval was added has no
// gate, and a deployer, who may trigger but not approve, deployed it.
func (r *run) approvedFor(ctx context.Context, env string) error {
	trusted, which := r.e.Trusted, "the daemon's cutover.yaml"
	if trusted == nil {
		trusted, which = r.cfg, "cutover.yaml"
	}
	e := trusted.Environments[env]
	if e == nil || e.Approval == nil || !e.Approval.Required {
		return nil
	}
	var t Trigger
	_ = json.Unmarshal([]byte(r.vars[TriggerVar]), &t)
	id := r.exec.ID
	for hops := 0; id != "" && hops <= 20; hops++ {
		as, err := r.e.Store.ListApprovals(ctx, id)
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.Status == store.ApprovalApproved && approvalEnvironment(trusted, a) == env {
				return nil
			}
		}
		if id == r.exec.ID {
			id = t.RetryOf
			continue
		}
		x, err := r.e.Store.GetExecution(ctx, id)
		if err != nil {
			return err
		}
		prev, _ := recordedTrigger(x)
		id = prev.RetryOf
	}
	return fmt.Errorf("%w: environments.%s.approval.required is set in %s and nobody approved this execution's deployment of %s (its commit's pipeline has no approval action for %s; run a commit whose pipeline asks for it)",
		ErrRefused, env, which, env, env)
}

// RetryTrigger is the trigger that runs old's commit again, from stage
// (reusing the variables of the stages before it) or from the start when
// stage is empty. It keeps old's kind: a retried pull request is still a
// pull request.
func RetryTrigger(old store.Execution, stage string) (Trigger, error) {
	t, err := recordedTrigger(old)
	if err != nil {
		return t, err
	}
	if source.Redacted(t.Repo) {
		return t, fmt.Errorf("execution %s ran from %s, whose credentials are not recorded; run the commit again with `cutover run --repo URL --branch %s --commit %s`, or give git the credentials (a credential helper) instead of the URL",
			old.ID, t.Repo, t.Branch, old.Commit)
	}
	t.Commit, t.RetriedFrom, t.RetryOf, t.FromStage = old.Commit, old.ID, "", stage
	if strings.TrimSpace(stage) != "" {
		t.RetryOf = old.ID
	}
	return t, nil
}

func recordedTrigger(x store.Execution) (Trigger, error) {
	var vars map[string]string
	var t Trigger
	if err := json.Unmarshal(x.Variables, &vars); err != nil || vars[TriggerVar] == "" {
		return t, fmt.Errorf("execution %s does not record its trigger; run `cutover run --commit %s` instead", x.ID, x.Commit)
	}
	if err := json.Unmarshal([]byte(vars[TriggerVar]), &t); err != nil {
		return t, fmt.Errorf("execution %s: its recorded trigger is unreadable: %v", x.ID, err)
	}
	if t.Repo == "" {
		return t, fmt.Errorf("execution %s does not record its repository; run `cutover run --commit %s` instead", x.ID, x.Commit)
	}
	return t, nil
}

// resolveKind gives a trigger of kind retry (as an older caller makes it)
// the kind of the execution it retries, following retries of retries.
func (e *Engine) resolveKind(ctx context.Context, t Trigger) (Trigger, error) {
	for hops := 0; t.Kind == TriggerRetry; hops++ {
		from := t.RetriedFrom
		if from == "" {
			from = t.RetryOf
		}
		if from == "" || hops > 20 {
			return t, fmt.Errorf("%w: a retry must name the execution it retries, to run as its kind", ErrRefused)
		}
		old, err := e.Store.GetExecution(ctx, from)
		if err != nil {
			return t, fmt.Errorf("%w: retry of %s: %v", ErrRefused, from, err)
		}
		ot, err := recordedTrigger(old)
		if err != nil {
			return t, fmt.Errorf("%w: %v", ErrRefused, err)
		}
		t.Kind, t.Base, t.PR = ot.Kind, ot.Base, ot.PR
		t.UntrustedBranch = t.UntrustedBranch || ot.UntrustedBranch
		if t.RetriedFrom == "" {
			t.RetriedFrom = from
		}
		if ot.Kind == TriggerRetry {
			t.RetriedFrom, t.RetryOf = ot.RetriedFrom, ot.RetryOf
		}
	}
	return t, nil
}

// loadConfig reads the run's configuration. A pull request's comes from
// its base branch (the trusted definition), applied to the pull request's
// workspace; the workspace's copies of the files that definition trusts
// (cutover.yaml, the compose files of integration actions) are replaced
// by the base's, so nothing the pull request changed in them is used.
func (r *run) loadConfig(ctx context.Context, t Trigger) (*config.Config, error) {
	path := filepath.Join(r.ws.Dir, t.ConfigPath)
	if !r.untrusted {
		return config.LoadWithin(path, r.ws.Dir)
	}
	base, err := r.trustedBase(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("%s: the base branch's pipeline definition: %w", r.who, err)
	}
	data, err := source.ReadFileAt(ctx, t.Repo, base, filepath.ToSlash(t.ConfigPath))
	if err != nil {
		return nil, fmt.Errorf("%s: the base branch's pipeline definition: %w", r.who, err)
	}
	baseName := t.Base
	if baseName == "" {
		baseName = "the default branch"
	}
	r.logf("execution", "%s: running the pipeline definition of %s at %s (%s), confined and without secrets; its own cutover.yaml is not used", r.who, baseName, short.SHA(base), t.ConfigPath)
	if err := writeTrusted(r.ws.Dir, path, data); err != nil {
		return nil, err
	}
	cfg, err := config.ParseWithin(path, filepath.Dir(path), r.ws.Dir, data)
	if err != nil {
		return nil, err
	}
	for _, st := range cfg.EffectivePipeline().Stages {
		for _, a := range st.Actions {
			if a.Kind != config.ActionIntegration {
				continue
			}
			file := a.Compose
			if file == "" {
				file = "docker-compose.yml"
			}
			rel := filepath.ToSlash(filepath.Join(filepath.Dir(t.ConfigPath), file))
			data, err := source.ReadFileAt(ctx, t.Repo, base, rel)
			if err != nil {
				return nil, fmt.Errorf("%s: %s of the base branch: %w", r.who, rel, err)
			}
			if err := writeTrusted(r.ws.Dir, filepath.Join(cfg.Dir(), file), data); err != nil {
				return nil, err
			}
			if r.trustedCompose == nil {
				r.trustedCompose = map[string][]byte{}
			}
			r.trustedCompose[file] = data
		}
	}
	return cfg, nil
}

// trustedBase is the commit whose definition an untrusted run takes: its
// base branch's head (Engine.Run has kept only a trusted base), else the
// default branch's, which must then be the head of a branch the daemon's
// pipeline.trusted_branches names. The default branch is not always one
// (main trusted, the repository's default branch dev): its definition was
// then anyone's who may push it, and the daemon acted on its
// pipeline.commit_status, sending a variable of its own environment (the
// webhook secret) as a token to the URL it named.
func (r *run) trustedBase(ctx context.Context, t Trigger) (string, error) {
	if t.Base != "" || r.e.Trusted == nil || r.e.Trusted.Pipeline == nil || len(r.e.Trusted.Pipeline.TrustedBranches) == 0 {
		return source.Resolve(ctx, t.Repo, t.Base)
	}
	commit, branches, err := source.DefaultHead(ctx, t.Repo)
	if err != nil {
		return "", err
	}
	if !slices.ContainsFunc(branches, r.e.Trusted.Pipeline.TrustsBranch) {
		return "", fmt.Errorf("%w: the default branch of %s (HEAD, at %s, the head of %s) is not among pipeline.trusted_branches (%s), so its definition is not a trusted one: make a trusted branch the repository's default branch, or trust it",
			ErrRefused, source.Redact(t.Repo), short.SHA(commit), orNone(branches), strings.Join(r.e.Trusted.Pipeline.TrustedBranches, ", "))
	}
	return commit, nil
}

func orNone(branches []string) string {
	if len(branches) == 0 {
		return "no branch"
	}
	return strings.Join(branches, ", ")
}

// writeTrusted replaces a workspace file with the trusted content, never
// through a link the pull request put there.
func writeTrusted(root, path string, data []byte) error {
	if err := config.Confined(root, filepath.Dir(path)); err != nil {
		return fmt.Errorf("pull request: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	_ = os.Remove(path)
	return os.WriteFile(path, data, 0o644)
}

// loadSecrets gives a trusted run its secrets. An untrusted one gets none:
// they are still loaded when available, only to mask them should they
// appear, and never reach its commands.
func (r *run) loadSecrets() error {
	if r.untrusted {
		// Not from a secrets file: that would be the pull request's copy,
		// and its values (a notification URL) would be the attacker's.
		p := *r.pipe
		if p.Secrets != nil {
			sec := *p.Secrets
			sec.File = ""
			p.Secrets = &sec
		}
		s, err := LoadSecrets(r.cfg, &p, r.e.Getenv)
		if err != nil {
			s = &Secrets{values: map[string]string{}, masker: mask.New(nil)}
		}
		r.secrets, r.secretsEnv = s, nil
		return nil
	}
	s, err := LoadSecrets(r.cfg, r.pipe, r.e.Getenv)
	if err != nil {
		return err
	}
	r.secrets, r.secretsEnv = s, s.Env()
	return nil
}

// env is the environment of a trusted host command: the allow-listed
// variables, then the pipeline's (variables, secrets, extra).
func (r *run) env(extra ...string) []string {
	// HOME is the workspace, CI is true, and a trusted run's Go commands
	// keep cutover's Go caches (GOCACHE, GOMODCACHE).
	env := append(proc.Environ(), "HOME="+r.ws.Dir, "CI=true")
	env = append(env, goCaches()...)
	return append(env, r.pipelineEnv(extra...)...)
}

// goCaches are cutover's Go build and module caches, which HOME set to the
// workspace would otherwise hide from a trusted run's go commands.
var goCaches = sync.OnceValue(func() []string {
	var out []string
	if out1, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out1)), "\n")
		if len(lines) == 2 {
			out = append(out, "GOCACHE="+lines[0], "GOMODCACHE="+lines[1])
		}
	}
	return out
})

// SandboxImage is the image a pull request's commands run in when its
// action names none: Debian's static busybox as the shell, FROM scratch.
const SandboxImage = "cutover/sandbox:busybox"

var sandboxMu sync.Mutex

// sandbox builds SandboxImage (the engine's cache makes that instant after
// the first time) from the host's static busybox.
func (r *run) sandbox(ctx context.Context) (string, error) {
	sandboxMu.Lock()
	defer sandboxMu.Unlock()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		bb = "/bin/busybox"
	}
	if err := staticELF(bb); err != nil {
		return "", fmt.Errorf("pull requests run their commands in a sandbox whose shell is a static busybox: %v (install it: apt-get install busybox-static)", err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "cutover-sandbox-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "busybox"), data, 0o755); err != nil {
		return "", err
	}
	df := "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN [\"/bin/busybox\", \"mkdir\", \"-p\", \"/tmp\", \"/usr/bin\"]\nRUN [\"/bin/busybox\", \"chmod\", \"1777\", \"/tmp\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return "", err
	}
	if _, err := r.e.Runtime.Build(ctx, docker.BuildRequest{ContextDir: dir, Tags: []string{SandboxImage}, NoNetwork: true,
		Labels: map[string]string{"dev.cutover.sandbox": "busybox"}}); err != nil {
		return "", fmt.Errorf("building the pull request sandbox: %w", err)
	}
	return SandboxImage, nil
}

func staticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

// goRoot is the host's Go toolchain, mounted read-only into the sandbox so
// that a pull request's go vet and go test run there; "" when none.
func goRoot() string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return ""
	}
	root := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(root, "bin", "go")); err != nil {
		return ""
	}
	return root
}

// confinedSpec turns a command of an untrusted run into a confined
// container: the sandbox image unless the action names one, no network,
// the daemon's user, the workspace its only writable mount, the host's Go
// toolchain read-only, HOME and the Go caches inside the workspace.
func (r *run) confinedSpec(ctx context.Context, spec *docker.CommandSpec) error {
	if spec.Image == "" {
		img, err := r.sandbox(ctx)
		if err != nil {
			return err
		}
		spec.Image = img
	}
	spec.Confined = true
	spec.User = strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid())
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	if root := goRoot(); root != "" {
		spec.ReadOnly = map[string]string{root: "/usr/local/go"}
		path = "/usr/local/go/bin:" + path
	}
	spec.Env = append([]string{"PATH=" + path, "HOME=/workspace", "CI=true", "LANG=C.UTF-8",
		"GOCACHE=/workspace/.cache/go-build", "GOMODCACHE=/workspace/.cache/go-mod", "GOPROXY=off", "GOTOOLCHAIN=local"}, spec.Env...)
	return nil
}

// NightlyTag is the extra tag of a scheduled execution's images (seed 003's
// nightly-<date>), from the day the execution was created, in UTC.
func NightlyTag(created time.Time) string {
	if created.IsZero() {
		created = time.Now()
	}
	return "nightly-" + created.UTC().Format("20060102")
}

// imageTags are the tags of a built image: the full and short commit,
// then, for a trusted run, latest and the branch. An untrusted run's are
// its own: pr-NUMBER- (or untrusted-) before the full and short commit,
// and pr-NUMBER; never a commit alone, latest, or a deploy branch's name.
func (r *run) imageTags() []string {
	commit := r.vars["CUTOVER_COMMIT"]
	if r.untrusted {
		// Never a trusted run's tag: a pull request can choose its commit's
		// short form (seven hex digits take minutes to collide), and its
		// images go to the same repositories.
		prefix, n := "untrusted-", r.vars["CUTOVER_PR"]
		if n != "" && n != "0" {
			prefix = "pr-" + n + "-"
		}
		tags := []string{prefix + commit, prefix + short.SHA(commit)}
		if n != "" && n != "0" {
			tags = append(tags, "pr-"+n)
		}
		return tags
	}
	tags := []string{commit, short.SHA(commit), "latest"}
	if b := tagUnsafe.ReplaceAllString(r.vars["CUTOVER_BRANCH"], "-"); b != "" {
		tags = append(tags, b)
	}
	if r.kind == TriggerSchedule {
		tags = append(tags, NightlyTag(r.exec.CreatedAt))
	}
	return tags
}

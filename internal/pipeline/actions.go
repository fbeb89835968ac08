package pipeline

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/hook"
	"github.com/cutoverdev/cutover/internal/lines"
	"github.com/cutoverdev/cutover/internal/notify"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/short"
)

// pipelineEnv is what every command gets: the variables, the secrets, extra.
func (r *run) pipelineEnv(extra ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(r.vars))
	for k := range r.vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var env []string
	for _, k := range keys {
		if !strings.HasPrefix(k, "_") {
			env = append(env, k+"="+r.vars[k])
		}
	}
	env = append(env, r.secretsEnv...)
	return append(env, extra...)
}

// sh runs one command line through the shell in dir, its output going,
// masked, line by line to the action's log. On the host, the command is
// the leader of its own process group, and the whole group is killed when
// the command ends (a process it left in the background does not outlive
// it) or ctx ends. A pull request's commands always run in a confined
// container instead (shInImage), which goes with all its processes.
func (r *run) sh(ctx context.Context, action, image, dir, line string, extraEnv ...string) error {
	if err := r.cancelled(ctx); err != nil {
		return err
	}
	r.logf(action, "$ %s", line)
	if image != "" || r.untrusted {
		return r.shInImage(ctx, action, image, dir, line, extraEnv)
	}
	out := r.commandOutput(action)
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = dir
	cmd.Env = r.env(extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("starting %q: %v", line, err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			out.line(sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		wg.Wait()
		return fmt.Errorf("starting %q: %v", line, err)
	}
	defer r.track(cmd.Process.Pid)()
	pw.Close() // the children hold the write end now
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err = cmd.Wait()
	close(done)
	// The shell is gone: end whatever it left running in its group.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	// A process that left the group (setsid) may still hold the pipe: read
	// what comes within a bound, then stop reading.
	read := make(chan struct{})
	go func() { wg.Wait(); close(read) }()
	select {
	case <-read:
	case <-time.After(2 * time.Second):
		pr.Close()
		<-read
	}
	pr.Close()
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %q interrupted", errCancelled, line)
	}
	if err != nil {
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return out.failed(fmt.Sprintf("command %q", line), code)
	}
	return nil
}

// shInImage runs one command line with sh inside a container of image,
// the workspace mounted at /workspace. Only the pipeline's variables and
// secrets are passed, not the host's environment. A trusted run's container
// has host networking; a pull request's is confined (confinedSpec).
func (r *run) shInImage(ctx context.Context, action, image, dir, line string, extraEnv []string) error {
	if r.e.Runtime == nil {
		if r.untrusted {
			return fmt.Errorf("%s: its commands run confined in a container, and this pipeline engine has no Docker engine (start Docker, then retry the execution)", r.who)
		}
		return fmt.Errorf("the action runs in image %s, and this pipeline engine has no Docker engine (start Docker, then retry the execution)", image)
	}
	rel, err := filepath.Rel(r.ws.Dir, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("%s is outside the workspace", dir)
	}
	env := r.pipelineEnv(extraEnv...)
	for i, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(v, r.ws.Dir) {
			env[i] = k + "=/workspace" + strings.TrimPrefix(v, r.ws.Dir) // e.g. CUTOVER_EXPORT
		}
	}
	out := r.commandOutput(action)
	whole := &lines.Writer{F: out.line} // a secret across the engine's 16 KiB parts is masked whole
	spec := docker.CommandSpec{
		Image: image, Cmd: []string{"sh", "-c", line}, Env: env,
		Mounts: map[string]string{r.ws.Dir: "/workspace"}, WorkDir: filepath.ToSlash(filepath.Join("/workspace", rel)),
		Labels: docker.Labels{Project: r.cfg.Project, Execution: r.exec.ID}, Output: whole,
	}
	if r.untrusted {
		if err := r.confinedSpec(ctx, &spec); err != nil {
			return err
		}
		image = spec.Image
	}
	code, err := r.e.Runtime.RunCommand(ctx, spec)
	whole.Flush()
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %q interrupted", errCancelled, line)
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return out.failed(fmt.Sprintf("command %q in image %s", line, image), code)
	}
	return nil
}

// commandOutput takes one command's output, line by line: each line goes,
// masked, to the action's log, and the last few, as masked there, are kept
// to quote if the command fails.
type commandOutput struct {
	r      *run
	action string
	last   *short.Tail
}

func (r *run) commandOutput(action string) commandOutput {
	return commandOutput{r: r, action: action, last: &short.Tail{Mask: r.maskf}}
}

func (o commandOutput) line(l string) {
	lines := []string{l}
	o.r.logLines(o.action, lines) // masks lines[0] in place: the secrets are out of it
	o.last.Add(lines[0])
}

// failed is the error of the command (what) that exited with code: with its
// last lines of output, so that the failure summary shows the cause (a
// compiler's "undefined: foo"), and where the rest is.
func (o commandOutput) failed(what string, code int) error {
	where := "its output is in `cutover logs " + o.r.exec.ID + "`"
	// Masked again once joined and stripped of colour codes: a secret
	// printed with a colour change inside it is whole only now.
	if last := o.r.maskf(o.last.String()); last != "" {
		where = "last output: " + last + "; all of it is in `cutover logs " + o.r.exec.ID + "`"
	}
	return fmt.Errorf("%s failed with exit code %d (%s)", what, code, where)
}

func (r *run) withTimeout(ctx context.Context, a config.Action) (context.Context, context.CancelFunc) {
	if a.Timeout.Std() > 0 {
		return context.WithTimeout(ctx, a.Timeout.Std())
	}
	return context.WithCancel(ctx)
}

// commands runs a test or command action: its commands in order, then the
// JUnit reports (test) or the exported variables (command).
func (r *run) commands(ctx context.Context, a config.Action, dir string) (result, error) {
	ctx, cancel := r.withTimeout(ctx, a)
	defer cancel()
	exportFile := filepath.Join(r.ws.Dir, ".cutover-export-"+a.Name)
	defer os.Remove(exportFile)
	var extra []string
	for k, v := range a.Env {
		extra = append(extra, k+"="+v)
	}
	extra = append(extra, "CUTOVER_EXPORT="+exportFile)
	var res result
	var runErr error
	for _, line := range a.Commands {
		if runErr = r.sh(ctx, a.Name, a.Image, dir, line, extra...); runErr != nil {
			break
		}
	}
	if len(a.Reports) > 0 {
		suites, err := ReadReports(r.cfg.Root(), r.cfg.Dir(), a.Reports)
		if err != nil && runErr == nil {
			return res, err
		}
		res.reports = suites
		res.summary = summarize(suites)
		for _, s := range suites {
			r.logf(a.Name, "suite %s: %d passed, %d failed, %d skipped", s.Name, s.Passed, s.Failed, s.Skipped)
		}
		if runErr == nil && failedTests(suites) > 0 {
			runErr = fmt.Errorf("%s", res.summary)
		}
	}
	if runErr != nil {
		return res, runErr
	}
	if len(a.Export) > 0 {
		res.outputs = map[string]string{}
		exported, err := readExports(exportFile)
		if err != nil {
			return res, err
		}
		for _, name := range a.Export {
			v, ok := exported[name]
			if !ok {
				return res, fmt.Errorf("export %s: the commands did not write %s=value to $CUTOVER_EXPORT", name, name)
			}
			res.outputs[name] = v
		}
	}
	return res, nil
}

func failedTests(suites []Suite) int {
	n := 0
	for _, s := range suites {
		n += s.Failed
	}
	return n
}

func summarize(suites []Suite) string {
	var p, f, s int
	for _, x := range suites {
		p, f, s = p+x.Passed, f+x.Failed, s+x.Skipped
	}
	return fmt.Sprintf("%d passed, %d failed, %d skipped in %d suites", p, f, s, len(suites))
}

func readExports(path string) (map[string]string, error) {
	out := map[string]string{}
	data, err := readBounded(path, maxExportBytes)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && k != "" {
			out[k] = v
		}
	}
	return out, nil
}

var tagUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// envName turns a service name into a variable suffix: backend → BACKEND.
func envName(s string) string {
	return strings.ToUpper(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(s, "_"))
}

// build runs the action's commands (install, lint, unit tests) and the
// service's build commands in its build context, then builds the image,
// tagged with the full and short SHA, the branch and latest. Images are
// pushed after the whole stage succeeded (afterStage), so a failed lint or
// test of any service pushes nothing.
func (r *run) build(ctx context.Context, a config.Action) (result, error) {
	svc := r.cfg.Services[a.Service]
	if svc == nil || svc.Build == nil {
		return result{}, fmt.Errorf("service %s has no build section in cutover.yaml", a.Service)
	}
	ctx, cancel := r.withTimeout(ctx, a)
	defer cancel()
	dir := r.cfg.ContextDir(a.Service)
	extra := []string{"CUTOVER_BUILD_ID=" + short.SHA(r.vars["CUTOVER_COMMIT"]), "CUTOVER_SERVICE=" + a.Service}
	for _, line := range append(append([]string{}, a.Commands...), svc.Build.Commands...) {
		if err := r.sh(ctx, a.Name, a.Image, dir, line, extra...); err != nil {
			return result{}, err
		}
	}
	// The build commands ran in the workspace: check again that the
	// context (and its Dockerfile) did not become a link out of it.
	for _, p := range []string{dir, filepath.Join(dir, svc.Build.Dockerfile)} {
		if err := config.Confined(r.cfg.Root(), p); err != nil {
			return result{}, fmt.Errorf("services.%s.build: %v", a.Service, err)
		}
	}
	repo := r.imageRepo(a.Service)
	commit := r.vars["CUTOVER_COMMIT"]
	var tags []string
	for _, tag := range r.imageTags() {
		tags = append(tags, repo+":"+tag)
	}
	storeID, err := r.e.Store.ID(ctx)
	if err != nil {
		return result{}, err
	}
	r.logf(a.Name, "building image %s from %s", repo, filepath.Join(svc.Build.Context, svc.Build.Dockerfile))
	r.mu.Lock()
	own := slices.Clone(r.built) // an untrusted build reads no other image cutover built
	r.mu.Unlock()
	img, err := r.e.Runtime.Build(ctx, docker.BuildRequest{
		ContextDir: dir, Dockerfile: svc.Build.Dockerfile, Tags: tags, BuildArgs: svc.Build.Args, NoNetwork: r.untrusted, OwnImages: own,
		Labels: map[string]string{docker.LabelProject: r.cfg.Project, docker.LabelService: a.Service, docker.LabelCommit: commit,
			docker.LabelStore: storeID}, // only this store's prune removes it
	})
	if err != nil {
		return result{}, err
	}
	r.mu.Lock()
	r.built = append(r.built, img.ID)
	r.mu.Unlock()
	key := envName(a.Service)
	return result{
		summary: fmt.Sprintf("image %s (%s)", tags[1], short.ID(img.ID)),
		outputs: map[string]string{"CUTOVER_IMAGE_" + key: img.ID, "CUTOVER_IMAGE_REF_" + key: tags[0]},
	}, nil
}

func (r *run) imageRepo(service string) string {
	name := r.cfg.Project + "-" + service
	if r.e.Registry != "" && r.e.Pusher != nil {
		return r.e.Registry + "/" + r.cfg.Project + "/" + service
	}
	return "cutover/" + name
}

// afterStage pushes the images a build stage produced to the registry and
// records their digests: deploys use the pushed digest.
func (r *run) afterStage(ctx context.Context, st config.Stage) error {
	if r.e.Registry == "" || r.e.Pusher == nil {
		return nil
	}
	for _, a := range st.Actions {
		if a.Kind != config.ActionBuild {
			continue
		}
		key := envName(a.Service)
		r.mu.Lock()
		full := r.vars["CUTOVER_IMAGE_REF_"+key]
		r.mu.Unlock()
		if full == "" {
			continue
		}
		repo := r.imageRepo(a.Service)
		var digest string
		for _, tag := range r.imageTags() {
			d, err := r.e.Pusher.Push(ctx, repo+":"+tag)
			if err != nil {
				return fmt.Errorf("pushing %s: %w", repo+":"+tag, err)
			}
			digest = d
		}
		r.logf(a.Name, "pushed %s@%s", repo, digest)
		r.mu.Lock()
		r.vars["CUTOVER_DIGEST_"+key] = digest
		r.vars["CUTOVER_IMAGE_DIGEST_REF_"+key] = repo + "@" + digest
		r.mu.Unlock()
	}
	return nil
}

// images maps each service to what a deploy or integration should run:
// the pushed digest reference when there is one, else the local image id.
func (r *run) images() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for _, name := range r.cfg.ServiceNames() {
		key := envName(name)
		if ref := r.vars["CUTOVER_IMAGE_DIGEST_REF_"+key]; ref != "" {
			out[name] = ref
		} else if id := r.vars["CUTOVER_IMAGE_"+key]; id != "" {
			out[name] = id
		}
	}
	return out
}

func (r *run) deploy(ctx context.Context, a config.Action) (result, error) {
	if r.e.Deploy == nil {
		return result{}, fmt.Errorf("deploying is not available in this command")
	}
	if err := r.mayDeploy(a.Environment); err != nil {
		return result{}, err
	}
	if err := r.approvedFor(ctx, a.Environment); err != nil {
		return result{}, err
	}
	images, promo, err := r.deployImages(ctx, a.Environment)
	if err != nil {
		return result{}, err
	}
	for _, name := range r.cfg.ServiceNames() {
		if r.cfg.Services[name].Build != nil && images[name] == "" {
			return result{}, fmt.Errorf("service %s has no image built in this execution (a build stage must run before deploy %s)", name, a.Environment)
		}
	}
	switch {
	case promo != nil && promo.Deployment != "":
		r.logf(a.Name, "promoting to %s the images %s verified for %s (deployment %s):", a.Environment, promo.From, short.SHA(r.exec.Commit), promo.Deployment)
		for _, name := range r.cfg.ServiceNames() {
			r.logf(a.Name, "  %s %s", name, images[name])
		}
	case promo != nil:
		r.logf(a.Name, "nothing to promote from %s (%s): deploying the images this execution built", promo.From, promo.Reason)
	}
	d, err := r.e.Deploy(ctx, r.cfg, a.Environment, images, RevisionSource(r.exec.Commit), func(line string) { r.logf(a.Name, "%s", line) })
	if err != nil {
		return result{}, err
	}
	res := result{summary: fmt.Sprintf("deployment %s: %s", d.ID, d.Status), outputs: map[string]string{"CUTOVER_DEPLOYMENT_" + envName(a.Environment): d.ID}}
	if d.Status != "succeeded" {
		if d.Status == "rolled_back" || d.Status == "stopped" {
			r.notify(notify.DeploymentRolledBack, fmt.Sprintf("%s: %s", a.Environment, d.Reason))
		}
		return res, fmt.Errorf("deployment %s to %s %s: %s", d.ID, a.Environment, strings.ReplaceAll(d.Status, "_", " "), d.Reason)
	}
	return res, nil
}

// verify runs HTTP checks through the environment's listener (smoke,
// contract, CORS: status, body, headers).
func (r *run) verify(ctx context.Context, a config.Action) (result, error) {
	env := r.cfg.Environments[a.Environment]
	hookEnv := hook.Env{
		TestURL:       env.Listen.TestURL(),
		ProductionURL: env.Listen.ProductionURL(),
		ProductionTLS: hook.ListenerTLS(r.cfg, env.Listen),
		Dir:           r.cfg.Dir(),
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = config.Duration(10 * time.Second)
	}
	var failed []string
	for _, c := range a.Checks {
		hc := c.HTTPCheck
		if hc.Listener == "" {
			hc.Listener = config.ListenerProduction
		}
		res := hook.Run(ctx, "verify", config.Hook{Name: c.Service + " " + c.Path, HTTP: &hc, Timeout: timeout}, hookEnv)
		r.logf(a.Name, "%s: %s", map[bool]string{true: "ok", false: "FAILED"}[res.OK], res.Detail)
		if !res.OK {
			failed = append(failed, res.Detail)
		}
	}
	if len(failed) > 0 {
		return result{}, fmt.Errorf("%d of %d checks failed: %s", len(failed), len(a.Checks), failed[0])
	}
	return result{summary: short.Count(len(a.Checks), "check") + " passed"}, nil
}

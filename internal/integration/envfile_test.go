package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// loadRun is a run that only loads its compose file (load never touches the engine).
func loadRun(root, file string, untrusted bool) *run {
	return &run{file: file, o: Options{ComposeFile: file, Project: "cutover-it-atk", Root: root, Untrusted: untrusted},
		services: map[string]*serviceState{}, waiting: map[string]bool{}}
}

// envOf is every KEY=value of every service (and pre_start hook) of proj.
func envOf(proj *types.Project) string {
	var b strings.Builder
	for _, s := range proj.Services {
		for _, kv := range env(s.Environment) {
			b.WriteString(kv + "\n")
		}
		for k, v := range s.Labels {
			b.WriteString(k + "=" + v + "\n")
		}
		for _, h := range s.PreStart {
			for _, kv := range env(h.Environment) {
				b.WriteString(kv + "\n")
			}
		}
	}
	return b.String()
}

// A pull request's workspace turns the (trusted) compose file's env_file
// into a link to cutover's own secrets: an untrusted run refuses it, and
// reads nothing of the host file into the stack (nor through .env).
func TestAttackUntrustedEnvFileFollowsLinkOutOfWorkspace(t *testing.T) {
	host := t.TempDir()
	secretFile := filepath.Join(host, "env")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(secretFile, []byte("CUTOVER_GITHUB_WEBHOOK_SECRET=hunter2-from-host\nPG_PASSWORD=dotenv-leak\napp.secret=label-leak\n"), 0o600))
	for _, tc := range []struct {
		name, compose, named string
	}{
		{"env_file", "services:\n  app:\n    image: busybox\n    env_file: test.env\n    environment:\n      DB_PASSWORD: ${PG_PASSWORD:-devpass}\n", "env_file test.env"},
		{"optional env_file", "services:\n  app:\n    image: busybox\n    env_file:\n      - path: test.env\n        required: false\n", "env_file test.env"},
		{"absolute env_file", "services:\n  app:\n    image: busybox\n    env_file: " + secretFile + "\n", "env_file " + secretFile},
		{"pre_start env_file", "services:\n  app:\n    image: busybox\n    pre_start:\n      - command: [\"true\"]\n        env_file: test.env\n", "env_file test.env"},
		{"label_file", "services:\n  app:\n    image: busybox\n    label_file: test.labels\n", "label_file test.labels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			f := filepath.Join(root, "docker-compose.yml")
			must(os.WriteFile(f, []byte(tc.compose), 0o644))
			for _, name := range []string{"test.env", "test.labels", ".env"} {
				must(os.Symlink(secretFile, filepath.Join(root, name)))
			}
			proj, err := loadRun(root, f, true).load(context.Background())
			if proj != nil {
				if e := envOf(proj); strings.Contains(e, "hunter2") || strings.Contains(e, "leak") {
					t.Errorf("the host file's values reached the stack:\n%s", e)
				}
			}
			if err == nil {
				t.Fatalf("load: no error, want the %s refused", tc.named)
			}
			for _, want := range []string{f, "service app", tc.named, "outside the workspace"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("load: %v\nwant it to name %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "leak") {
				t.Errorf("the error quotes the host file: %v", err)
			}
		})
	}
}

// An env_file (and label_file) inside the workspace still lands in the
// service's environment in an untrusted run, a missing optional one is
// skipped, and a trusted run reads its env_file (even through a link) as before.
func TestUntrustedEnvFileInsideWorkspaceLoads(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "cfg"), 0o755))
	must(os.WriteFile(filepath.Join(root, "cfg", "test.env"), []byte("FROM_FILE=yes\nOVERRIDDEN=file\n"), 0o644))
	must(os.Symlink(filepath.Join("cfg", "test.env"), filepath.Join(root, "linked.env"))) // a link that stays inside
	must(os.WriteFile(filepath.Join(root, "test.labels"), []byte("com.example.tier=test\n"), 0o644))
	f := filepath.Join(root, "docker-compose.yml")
	must(os.WriteFile(f, []byte("services:\n  app:\n    image: busybox\n    env_file:\n      - cfg/test.env\n      - linked.env\n      - path: missing.env\n        required: false\n    label_file: test.labels\n    environment:\n      OVERRIDDEN: compose\n"), 0o644))
	for _, untrusted := range []bool{true, false} {
		proj, err := loadRun(root, f, untrusted).load(context.Background())
		if err != nil {
			t.Fatalf("untrusted=%v: load: %v", untrusted, err)
		}
		e := envOf(proj)
		for _, want := range []string{"FROM_FILE=yes\n", "OVERRIDDEN=compose\n", "com.example.tier=test\n"} {
			if !strings.Contains(e, want) {
				t.Errorf("untrusted=%v: environment and labels\n%s\nwant %q", untrusted, e, want)
			}
		}
	}

	// A trusted run is unchanged: its env_file may be anywhere.
	host := t.TempDir()
	must(os.WriteFile(filepath.Join(host, "env"), []byte("HOST_VALUE=ok\n"), 0o600))
	must(os.Symlink(filepath.Join(host, "env"), filepath.Join(root, "host.env")))
	f2 := filepath.Join(root, "trusted.yml")
	must(os.WriteFile(f2, []byte("services:\n  app:\n    image: busybox\n    env_file: host.env\n"), 0o644))
	proj, err := loadRun(root, f2, false).load(context.Background())
	if err != nil {
		t.Fatalf("trusted: load: %v", err)
	}
	if e := envOf(proj); !strings.Contains(e, "HOST_VALUE=ok\n") {
		t.Errorf("trusted: environment\n%s\nwant HOST_VALUE=ok", e)
	}
}

// Attack: an included project is loaded with its own .env and env_file for
// interpolation, links followed, before anything can check them: a pull
// request's inc/.env linked to cutover's secrets put them in its stack
// (${SECRET} in the included file). A pull request's run refuses include,
// naming the compose file and the line; a trusted run still takes it.
func TestAttackUntrustedIncludeIsRefused(t *testing.T) {
	host := t.TempDir()
	secretFile := filepath.Join(host, "env")
	if err := os.WriteFile(secretFile, []byte("SECRET=hunter2-from-host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string][2]string{
		"its .env":     {"services:\n  app:\n    image: busybox\ninclude:\n  - path: inc/compose.yml\n", "services:\n  side:\n    image: busybox\n    environment:\n      X: ${SECRET:-none}\n"},
		"its env_file": {"services:\n  app:\n    image: busybox\ninclude:\n  - path: inc/compose.yml\n    env_file: inc/test.env\n", "services:\n  side:\n    image: busybox\n    environment:\n      X: ${SECRET:-none}\n"},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "inc"), 0o755); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(root, "docker-compose.yml")
			for p, content := range map[string]string{f: c[0], filepath.Join(root, "inc", "compose.yml"): c[1]} {
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range []string{"test.env", ".env"} {
				if err := os.Symlink(secretFile, filepath.Join(root, "inc", n)); err != nil {
					t.Fatal(err)
				}
			}
			proj, err := loadRun(root, f, true).load(context.Background())
			if proj != nil && strings.Contains(envOf(proj), "hunter2") {
				t.Errorf("the host file's values reached the stack:\n%s", envOf(proj))
			}
			if err == nil || !strings.Contains(err.Error(), f+", line 4: include is not taken") {
				t.Fatalf("untrusted load: %v, want include refused at line 4", err)
			}
			if proj, err := loadRun(root, f, false).load(context.Background()); err != nil || proj.Services["side"].Name == "" {
				t.Errorf("a trusted run with include: %v", err)
			}
		})
	}
}

// An untrusted run reads a temporary copy of its base's compose file: its
// errors name the file as Options.Name gives it (the workspace's), not the
// copy, which is gone when the user reads them.
func TestErrorsNameTheComposeFileByItsName(t *testing.T) {
	testenv.RequireDocker(t)
	ctx := context.Background()
	rt, err := docker.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	copyDir := t.TempDir()
	copyPath := filepath.Join(copyDir, "docker-compose.yml")
	if err := os.WriteFile(copyPath, []byte("services:\n  web:\n    ports: [\"nonsense:port:spec:x\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Run(ctx, rt, Options{ComposeFile: copyPath, Name: "/work/ws/docker-compose.yml", Project: "cutover-it-name"})
	if err == nil || !strings.Contains(err.Error(), "/work/ws/docker-compose.yml") || strings.Contains(err.Error(), copyDir) {
		t.Fatalf("error %v: want the compose file named /work/ws/docker-compose.yml, never the copy in %s", err, copyDir)
	}
}

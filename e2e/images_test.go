package e2e

// The example's images build FROM scratch with the prebuilt static binaries,
// from a copy of the example in its own git repository, and come up healthy
// on the real engine. Handlers and fault modes are covered by the unit tests
// of each service (in the example's own module).

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/cutoverdev/cutover/internal/testenv"
)

func TestImagesBuildAndBecomeHealthy(t *testing.T) {
	testenv.RequireDocker(t)
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	version := "test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	repo := testenv.ExampleRepo(t, "main", nil)
	for _, svc := range []struct{ name, port, path string }{
		{"backend", "3001", "/api/health"},
		{"frontend", "80", "/"},
	} {
		t.Run(svc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			image := buildImage(ctx, t, cli, filepath.Join(repo, svc.name), svc.name, version)
			id := startContainer(ctx, t, cli, image, svc.name, svc.port)
			hostPort := waitHealthy(ctx, t, cli, id, svc.port)

			resp, err := http.Get("http://127.0.0.1:" + hostPort + svc.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("X-Bluemed-Version") != version {
				t.Errorf("GET %s: %d, version %q; want 200 and %q", svc.path, resp.StatusCode, resp.Header.Get("X-Bluemed-Version"), version)
			}

			// PID 1 in a scratch image gets SIGTERM with no default handler:
			// a clean exit proves the service handles it itself.
			if _, err := cli.ContainerStop(ctx, id, client.ContainerStopOptions{}); err != nil {
				t.Fatal(err)
			}
			st, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if code := st.Container.State.ExitCode; code != 0 {
				t.Errorf("exit code %d after docker stop, want 0 (graceful shutdown)", code)
			}
		})
	}
}

// buildImage builds the static binary of the service in src into a
// temporary context next to a copy of its Dockerfile, as the Dockerfile
// expects, and returns the image ID.
func buildImage(ctx context.Context, t *testing.T, cli *client.Client, src, name, version string) string {
	t.Helper()
	dir := t.TempDir()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go toolchain not in PATH: %v", err)
	}
	build := exec.CommandContext(ctx, gobin, "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+version, "-o", filepath.Join(dir, "bin", name), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}

	res, err := cli.ImageBuild(ctx, &tarball, client.ImageBuildOptions{
		Remove: true, ForceRemove: true, Labels: map[string]string{"dev.cutover.test": "bluemed"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	// The build answers a stream of JSON messages: log lines, an error, and
	// the image ID in an aux message.
	var image string
	var log bytes.Buffer
	dec := json.NewDecoder(res.Body)
	for err == nil {
		var m jsonstream.Message
		if err = dec.Decode(&m); err != nil {
			break
		}
		log.WriteString(m.Stream)
		var aux struct{ ID string }
		if m.Aux != nil && json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
			image = aux.ID
		}
		if m.Error != nil {
			err = errors.New(m.Error.Message)
		}
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if image != "" {
		t.Cleanup(func() {
			if _, err := cli.ImageRemove(context.Background(), image, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
				t.Errorf("removing image %s: %v", image, err)
			}
		})
	}
	if err != nil || image == "" {
		t.Fatalf("docker build %s: %v\n%s", name, err, &log)
	}
	return image
}

// startContainer runs image with its port published on 127.0.0.1 only and a
// Docker healthcheck that uses the binary's own -healthcheck flag, as the
// compose file does.
func startContainer(ctx context.Context, t *testing.T, cli *client.Client, image, name, port string) string {
	t.Helper()
	p := network.MustParsePort(port + "/tcp")
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:        image,
			ExposedPorts: network.PortSet{p: {}},
			Labels:       map[string]string{"dev.cutover.test": "bluemed"},
			Healthcheck: &container.HealthConfig{
				Test:     []string{"CMD", "/" + name, "-healthcheck"},
				Interval: 300 * time.Millisecond,
				Timeout:  3 * time.Second,
				Retries:  3,
			},
		},
		HostConfig: &container.HostConfig{
			PortBindings: network.PortMap{p: {{HostIP: netip.MustParseAddr("127.0.0.1")}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := cli.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Errorf("removing container %s: %v", created.ID, err)
		}
	})
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	return created.ID
}

// waitHealthy waits for Docker to report the container healthy and returns
// the host port published for port.
func waitHealthy(ctx context.Context, t *testing.T, cli *client.Client, id, port string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := st.Container.State
		if s.Health != nil && s.Health.Status == container.Healthy {
			bindings := st.Container.NetworkSettings.Ports[network.MustParsePort(port+"/tcp")]
			if len(bindings) == 0 {
				t.Fatalf("container %.12s has no host port for %s", id, port)
			}
			return bindings[0].HostPort
		}
		if !s.Running || time.Now().After(deadline) {
			logs, _ := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
			var out []byte
			if logs != nil {
				out, _ = io.ReadAll(logs)
				logs.Close()
			}
			t.Fatalf("container %.12s not healthy (running %v, health %+v); logs:\n%s", id, s.Running, s.Health, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

package e2e

// The example's images (built FROM scratch with the prebuilt static binaries,
// from a copy of the example in its own git repository: the harness's
// release A) come up healthy under the healthcheck of its compose file and
// stop cleanly. Handlers and fault modes are covered by the unit tests of
// each service (in the example's own module).

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/cutoverdev/cutover/internal/testenv"
)

func TestImagesBecomeHealthyAndStopCleanly(t *testing.T) {
	testenv.RequireDocker(t)
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	a, _ := releases(t)
	version := a.Version
	for _, svc := range []struct{ name, image, port, path string }{
		{"backend", a.Backend, "3001", "/api/health"},
		{"frontend", a.Frontend, "80", "/"},
	} {
		t.Run(svc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			id := startContainer(ctx, t, cli, svc.image, svc.name, svc.port, svc.path)
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

// startContainer runs image with its port published on 127.0.0.1 only and a
// Docker healthcheck that uses the binary's own -healthcheck flag with the
// path to probe, as the compose file does.
func startContainer(ctx context.Context, t *testing.T, cli *client.Client, image, name, port, path string) string {
	t.Helper()
	p := network.MustParsePort(port + "/tcp")
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:        image,
			ExposedPorts: network.PortSet{p: {}},
			Labels:       map[string]string{"dev.cutover.test": "bluemed"},
			Healthcheck: &container.HealthConfig{
				Test:     []string{"CMD", "/" + name, "-healthcheck", path},
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

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// startBackend builds the bluemed backend and runs it on a free 127.0.0.1
// port, without Docker: the benchmark measures the proxy, not Docker's
// userland proxy. It returns the child and its address.
func startBackend(ctx context.Context, moduleDir, dir string) (*child, string, error) {
	// The example is a module of its own: build inside it.
	bin, err := goBuild(ctx, filepath.Join(moduleDir, "examples", "bluemed"), "./backend", dir, "bluemed-backend")
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT=0", "BLUEMED_FAULT=")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	c, err := startChild("bluemed backend", cmd)
	if err != nil {
		return nil, "", err
	}
	addr, err := scanFor(stdout, " listening on ", 10*time.Second)
	if err != nil {
		c.stop(5 * time.Second)
		return nil, "", err
	}
	return c, strings.TrimSpace(addr), nil
}

package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cutoverdev/cutover/internal/runtime/docker"
)

// LogLine is one line a service's container wrote.
type LogLine struct {
	Task    string // the container's short ID
	Color   string // blue or green
	Message string
}

// ServiceLogs reads the logs of an environment's service from the Docker
// engine: the last tail lines (all when tail <= 0) of each of its
// containers, running or not, written since then (all when since is zero), and with follow what the running ones write
// next, until they stop or ctx ends (which is not an error). Lines of one
// container keep their order; with several containers following, lines
// interleave as they come.
func ServiceLogs(ctx context.Context, rt *docker.Runtime, project, env, service string, follow bool, tail int, since time.Time, emit func(LogLine) error) error {
	tasks, err := rt.ListTasks(ctx, docker.Labels{Project: project, Environment: env, Service: service})
	if err != nil {
		return err
	}
	if len(tasks) == 0 {
		return fmt.Errorf("no containers of service %s in environment %s (deploy it: cutover deploy %s)", service, env, env)
	}
	var mu sync.Mutex // emit is called by one container's reader at a time
	read := func(t docker.Task) error {
		rc, err := rt.Logs(ctx, t.ID, follow && t.Running, tail, since)
		if err != nil {
			return err
		}
		defer rc.Close()
		sc := bufio.NewScanner(rc)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			mu.Lock()
			err := emit(LogLine{Task: shortTaskID(t.ID), Color: t.Labels.Color, Message: sc.Text()})
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, io.ErrClosedPipe) {
			return fmt.Errorf("logs of %s: %v", shortTaskID(t.ID), err)
		}
		return nil
	}
	if !follow {
		for _, t := range tasks {
			if err := read(t); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make(chan error, len(tasks))
	for _, t := range tasks {
		go func() { errs <- read(t) }()
	}
	var first error
	for range tasks {
		if err := <-errs; err != nil && first == nil && ctx.Err() == nil {
			first = err
		}
	}
	return first
}

func shortTaskID(id string) string { return id[:min(len(id), 12)] }

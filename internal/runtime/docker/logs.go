package docker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Logs returns the task's stdout and stderr, interleaved as plain text. With
// follow it stays open for new output until closed or ctx ends; tail > 0
// starts from the last tail lines, otherwise from the beginning.
func (r *Runtime) Logs(ctx context.Context, id string, follow bool, tail int, since time.Time) (io.ReadCloser, error) {
	info, err := r.client.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, taskError("logs of", id, err)
	}
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow, Tail: "all"}
	if tail > 0 {
		opts.Tail = strconv.Itoa(tail)
	}
	if !since.IsZero() {
		opts.Since = fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond())
	}
	body, err := r.client.ContainerLogs(ctx, id, opts)
	if err != nil {
		return nil, taskError("logs of", id, err)
	}
	if info.Container.Config != nil && info.Container.Config.Tty {
		return body, nil // a TTY's output is one raw stream
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, body)
		pw.CloseWithError(err)
	}()
	return &demuxed{PipeReader: pr, body: body}, nil
}

// demuxed is the demultiplexed log stream; closing it also closes the
// engine's stream, which ends the copying goroutine.
type demuxed struct {
	*io.PipeReader
	body io.Closer
}

func (d *demuxed) Close() error {
	err := d.body.Close()
	d.PipeReader.Close()
	return err
}

// LastLogLines returns up to the last n lines the task wrote (stdout and
// stderr), without trailing empty lines.
func (r *Runtime) LastLogLines(ctx context.Context, id string, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	rc, err := r.Logs(ctx, id, false, n, time.Time{})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var lines []string
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, taskError("logs of", id, err)
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

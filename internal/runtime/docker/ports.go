package docker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/client"
)

// procRoot is where the host's /proc is; a variable so tests can point it elsewhere.
var procRoot = "/proc"

// ListeningPorts returns, best effort, the TCP ports something listens on
// inside the task's network namespace, sorted. It reads /proc/PID/net/tcp and
// tcp6 of the task's init process on the host, which works without any tool
// in the image (FROM scratch) but needs the engine on this host and enough
// privilege to read another process's /proc (root).
func (r *Runtime) ListeningPorts(ctx context.Context, id string) ([]int, error) {
	res, err := r.client.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, taskError("inspect", id, err)
	}
	t, pid := taskFromInspect(res.Container), 0
	if res.Container.State != nil {
		pid = res.Container.State.Pid
	}
	if !t.Running || pid <= 0 {
		return nil, fmt.Errorf("listening ports of task %s: it is not running", t.Name)
	}
	var ports []int
	for _, file := range []string{"tcp", "tcp6"} {
		path := filepath.Join(procRoot, strconv.Itoa(pid), "net", file)
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) && file == "tcp6" {
			continue // IPv6 disabled in the kernel
		}
		if err != nil {
			return nil, fmt.Errorf("listening ports of task %s: %w", t.Name, err)
		}
		p, err := parseListeningPorts(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("listening ports of task %s: %s: %w", t.Name, path, err)
		}
		ports = append(ports, p...)
	}
	slices.Sort(ports)
	return slices.Compact(ports), nil
}

// tcpListen is the kernel's TCP_LISTEN state in /proc/net/tcp's "st" column.
const tcpListen = "0A"

// parseListeningPorts reads the /proc/net/tcp (or tcp6) format and returns
// the local ports of sockets in LISTEN state, in file order. A line looks like
//
//	sl  local_address rem_address   st tx_queue:rx_queue ...
//	 0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 ...
//
// where the port after the colon is hexadecimal. (prometheus/procfs parses
// this too, but its NetTCP is deprecated; the format is three fields.)
func parseListeningPorts(r io.Reader) ([]int, error) {
	var ports []int
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 4 {
			return nil, fmt.Errorf("malformed line %q", sc.Text())
		}
		if fields[3] != tcpListen {
			continue
		}
		_, portHex, ok := strings.Cut(fields[1], ":")
		if !ok {
			return nil, fmt.Errorf("malformed local address %q", fields[1])
		}
		port, err := strconv.ParseUint(portHex, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("malformed port in local address %q", fields[1])
		}
		ports = append(ports, int(port))
	}
	return ports, sc.Err()
}

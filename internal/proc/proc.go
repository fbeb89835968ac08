// Package proc answers questions about processes on this host, the one
// place cutover decides whether a recorded PID is still the process it
// recorded: lease holders, the proxy and its supervisor, the owner of an
// execution, and the commands a pipeline left running.
//
// Linux semantics: /proc tells a zombie (exited, not yet reaped) from a
// live process and gives each process's start time, which tells a recorded
// PID from a later process that reused the number. Without /proc, kill(0)
// is trusted.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Alive reports whether pid runs on this host and is not a zombie. PIDs
// <= 0 name process groups or the caller's group, never one process: false.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false // EPERM: it exists but belongs to another user
	}
	state, _, err := stat(pid)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	return state != 'Z' && state != 'X'
}

// StartTime returns pid's start time in clock ticks since boot (field 22
// of /proc/PID/stat): a PID and its start time name one process for good.
// It is 0 when pid does not run or /proc is not there.
func StartTime(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	_, start, err := stat(pid)
	if err != nil {
		return 0
	}
	return start
}

// Same reports whether pid still names the process that had start time
// start (as StartTime gave it then): alive, and not a reuse of the number.
func Same(pid int, start uint64) bool {
	return Alive(pid) && (start == 0 || StartTime(pid) == start)
}

// KillGroup ends the process group pgid (SIGKILL) that a process started
// with Setpgid led, once started at leaderStart: only when the leader is
// still that process, or is gone while members of its group remain (a
// group id is not handed out again while the group has members). It
// reports whether a signal was sent.
func KillGroup(pgid int, leaderStart uint64) bool {
	if pgid <= 1 {
		return false // never the caller's own group or init's
	}
	if Alive(pgid) && leaderStart != 0 && StartTime(pgid) != leaderStart {
		return false // the number names another process now
	}
	return syscall.Kill(-pgid, syscall.SIGKILL) == nil
}

// stat reads the state letter and start time of /proc/PID/stat,
// "pid (comm) S ppid ... starttime ...": comm may hold spaces and
// parentheses, so fields are counted after the last ')'.
func stat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := bytes.Fields(b[i+2:])
	// fields[0] is the state (field 3); starttime is field 22, fields[19].
	if len(fields) < 20 {
		return fields[0][0], 0, nil
	}
	start, _ = strconv.ParseUint(string(fields[19]), 10, 64)
	return fields[0][0], start, nil
}

// HostEnv names the variables of cutover's own environment that the
// commands it runs (a pipeline's trusted host commands, deploy hooks) see
// when set: nothing else of cutover's environment (API tokens, webhook
// secrets, cloud credentials) reaches them. A command needs more? The
// pipeline's variables and secrets, or a hook's env, give it by name.
var HostEnv = []string{"PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN"}

// Environ is the part of cutover's environment named by HostEnv, and by
// also, as NAME=VALUE lines for exec.Cmd.Env.
func Environ(also ...string) []string {
	var env []string
	for _, k := range append(append([]string{}, HostEnv...), also...) {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// ListenerUID returns the user ID that owns the IPv4 TCP socket listening
// on 127.0.0.1:port (or on every address at port), from /proc/net/tcp:
// whom a connection to that address would reach, before anything is sent
// to it. ok is false when nothing listens there or /proc cannot be read.
func ListenerUID(port int) (uid int, ok bool) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, false
	}
	want := []string{fmt.Sprintf("0100007F:%04X", port), fmt.Sprintf("00000000:%04X", port)}
	// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) < 8 || string(f[3]) != "0A" || (string(f[1]) != want[0] && string(f[1]) != want[1]) {
			continue
		}
		n, err := strconv.Atoi(string(f[7]))
		if err != nil {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

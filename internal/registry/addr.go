package registry

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultAddr lets the kernel pick a free loopback port.
const DefaultAddr = "127.0.0.1:0"

// loopbackAddr validates a listen (or dial) address and returns it in a form
// net.Listen accepts. Reads need no credential, so anything
// reachable from outside the machine is refused.
func loopbackAddr(addr string) (string, error) {
	if addr == "" {
		return DefaultAddr, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("registry: address %q is not host:port (use e.g. 127.0.0.1:5000, or 127.0.0.1:0 for a free port)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("registry: address %q has an invalid port %q (use a number from 0 to 65535)", addr, port)
	}
	if strings.EqualFold(host, "localhost") {
		// Pin the IPv4 loopback: "localhost" may resolve to ::1 for one
		// program and 127.0.0.1 for another.
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		if host == "" {
			host = "all interfaces"
		}
		return "", fmt.Errorf("registry: address %q listens on %s, which is not loopback; anyone may pull from the embedded registry, so it only serves on 127.0.0.1 (use 127.0.0.1:PORT)", addr, host)
	}
	return addr, nil
}

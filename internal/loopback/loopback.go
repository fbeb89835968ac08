// Package loopback keeps cutover's own HTTP traffic (lifecycle hooks, the load
// generator, the benchmark's probe) on the host: a URL is accepted only when
// its host is localhost or a loopback IP literal (CheckURL), and a connection
// is made only to an address that is a loopback IP once resolved (Dialer), so
// a name such as localhost that resolves off the host is refused before any
// packet leaves. It is a leaf: it imports nothing of cutover.
package loopback

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
)

// allowed names the hosts accepted, for error messages.
const allowed = "only loopback addresses (127.0.0.1, ::1, localhost) are allowed"

// CheckURL returns an error unless rawURL's host is localhost or a loopback IP
// literal (127.0.0.0/8, ::1, or 127.x as an IPv4-mapped IPv6 address). Other
// names, unspecified addresses (0.0.0.0, ::) and addresses with an IPv6 zone
// are refused: they are not written as loopback, whatever they resolve to.
func CheckURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("bad URL %q: %v", rawURL, err)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || isLoopbackIP(host) {
		return nil
	}
	return fmt.Errorf("refusing to send requests to %q: %s", host, allowed)
}

// Control is a net.Dialer Control function: it refuses to connect unless the
// resolved address is a loopback IP. It runs after name resolution and
// before connect(2), so nothing is sent to a refused address.
func Control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil || !isLoopbackIP(host) {
		return fmt.Errorf("refusing to connect to %s: not a loopback address", address)
	}
	return nil
}

// Dialer returns a dialer that connects only to loopback addresses (Control).
func Dialer() *net.Dialer {
	return &net.Dialer{Control: Control}
}

// isLoopbackIP reports whether host is an IP literal in the loopback range.
// net.ParseIP refuses zones ("::1%eth0"), so they never pass.
func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

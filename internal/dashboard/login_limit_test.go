package dashboard

import (
	"fmt"
	"testing"
	"time"
)

// Attack (found by a review): failed logins were counted by exact address,
// so each address of an IPv6 /64 (2^64 of them, one host's share) had its
// own ten a minute, each audited; and failures from 10,001 other addresses
// emptied the table, unblocking a blocked one. An IPv6 client is its /64
// now, and a full table refuses new clients rather than forgetting the
// blocked.
func TestAttackLoginLimitIsPerExactAddress(t *testing.T) {
	now := time.Now()
	var f failures
	for i := 1; i <= loginFailures; i++ {
		f.add(fmt.Sprintf("[2001:db8:1:2::%x]:40000", i), now)
	}
	if !f.blocked("[2001:db8:1:2::ffff]:40000", now) {
		t.Errorf("after %d failures from one /64, an 11th address of it is not limited", loginFailures)
	}
	if f.blocked("[2001:db8:1:3::1]:40000", now) || f.blocked("192.0.2.8:1", now) {
		t.Error("another /64, or an IPv4 address, is limited by that /64's failures")
	}
	var g failures
	for range loginFailures {
		g.add("[::ffff:192.0.2.7]:40000", now) // IPv4 seen through an IPv6 socket
	}
	if !g.blocked("192.0.2.7:40000", now) {
		t.Fatal("not blocked after the limit")
	}
	for i := range maxFailureClients + 1 {
		g.add(fmt.Sprintf("[2001:db8:9:%x::1]:40000", i), now)
	}
	if !g.blocked("192.0.2.7:40000", now) {
		t.Errorf("a blocked address was unblocked by failures from %d other addresses within the window", maxFailureClients+1)
	}
	// A minute later the table has room again.
	if g.blocked("198.51.100.1:1", now.Add(loginWindow)) {
		t.Error("a new client is refused once every failure has expired")
	}
}

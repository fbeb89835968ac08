package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FaultEnv names the environment variable that makes the backend misbehave on
// purpose, so deployment tests can prove that cutover catches each failure.
const FaultEnv = "BLUEMED_FAULT"

// faultKind is one way of misbehaving.
type faultKind string

const (
	faultNone       faultKind = ""
	faultExit       faultKind = "exit"       // crash at start, as a bad config would
	faultPort       faultKind = "port"       // listen on the wrong port (seed incident 004)
	faultError500   faultKind = "error500"   // business endpoints 500, health stays 200
	faultSlow       faultKind = "slow"       // business endpoints answer late
	faultCrashAfter faultKind = "crashafter" // exit 2 some time after a healthy start
)

// fault is a parsed BLUEMED_FAULT value.
type fault struct {
	kind  faultKind
	port  string        // faultPort
	delay time.Duration // faultSlow, faultCrashAfter
}

const faultUsage = "use one of: exit, port=5201, error500, slow=800ms, crashafter=3s, or leave it empty"

// parseFault reads a BLUEMED_FAULT value such as "slow=800ms".
func parseFault(v string) (fault, error) {
	name, arg, hasArg := strings.Cut(strings.TrimSpace(v), "=")
	f := fault{kind: faultKind(name)}
	bad := func(why string) (fault, error) {
		return fault{}, fmt.Errorf("%s=%q: %s; %s", FaultEnv, v, why, faultUsage)
	}
	switch f.kind {
	case faultNone, faultExit, faultError500:
		if hasArg {
			return bad("this fault takes no value")
		}
	case faultPort:
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > 65535 {
			return bad("the value must be a TCP port number")
		}
		f.port = strconv.Itoa(n)
	case faultSlow, faultCrashAfter:
		d, err := time.ParseDuration(arg)
		if err != nil || d <= 0 {
			return bad("the value must be a positive duration such as 800ms or 3s")
		}
		f.delay = d
	default:
		return bad("unknown fault")
	}
	return f, nil
}

package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseFault(t *testing.T) {
	good := map[string]fault{
		"":                {},
		"exit":            {kind: faultExit},
		"port=5201":       {kind: faultPort, port: "5201"},
		"error500":        {kind: faultError500},
		"slow=800ms":      {kind: faultSlow, delay: 800 * time.Millisecond},
		" crashafter=3s ": {kind: faultCrashAfter, delay: 3 * time.Second},
	}
	for in, want := range good {
		got, err := parseFault(in)
		if err != nil || got != want {
			t.Errorf("parseFault(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"explode":      "unknown fault",
		"port=http":    "TCP port number",
		"port=70000":   "TCP port number",
		"slow=fast":    "positive duration",
		"slow":         "positive duration",
		"crashafter=0": "positive duration",
		"exit=1":       "takes no value",
	}
	for in, want := range bad {
		_, err := parseFault(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "BLUEMED_FAULT") {
			t.Errorf("parseFault(%q) error %v, want it to name BLUEMED_FAULT and say %q", in, err, want)
		}
	}
}

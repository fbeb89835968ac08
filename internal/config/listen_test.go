package config

import (
	"strings"
	"testing"
)

const listenBase = "version: 1\nproject: p\nservices:\n  web: { image: web:1, port: 80, route: { path_prefix: / } }\nenvironments:\n  production:\n"

func TestListenAddressDefaultsToLoopback(t *testing.T) {
	c, err := Parse("cutover.yaml", []byte(listenBase+"    listen: { port: 9000 }\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Environments["production"].Listen
	if l.Address != "127.0.0.1" || l.ProductionAddr() != "127.0.0.1:9000" || l.TestAddr() != "127.0.0.1:9001" {
		t.Fatalf("listen %+v: production %s test %s", l, l.ProductionAddr(), l.TestAddr())
	}
	if l.ProductionURL() != "http://127.0.0.1:9000" || l.TestURL() != "http://127.0.0.1:9001" {
		t.Fatalf("urls %s %s", l.ProductionURL(), l.TestURL())
	}
}

func TestListenAddressAndAnyPort(t *testing.T) {
	for _, tc := range []struct{ addr, prod, local string }{
		{"0.0.0.0", "0.0.0.0:443", "http://127.0.0.1:443"},
		{"::", "[::]:443", "http://127.0.0.1:443"},
		{"192.0.2.10", "192.0.2.10:443", "http://192.0.2.10:443"},
		{"::1", "[::1]:443", "http://[::1]:443"},
	} {
		c, err := Parse("cutover.yaml", []byte(listenBase+"    listen: { address: \""+tc.addr+"\", port: 443, test_port: 1 }\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.addr, err)
		}
		l := c.Environments["production"].Listen
		if l.ProductionAddr() != tc.prod || l.ProductionURL() != tc.local {
			t.Errorf("%s: production %s, url %s; want %s, %s", tc.addr, l.ProductionAddr(), l.ProductionURL(), tc.prod, tc.local)
		}
		// The test listener never faces users.
		if l.TestAddr() != "127.0.0.1:1" {
			t.Errorf("%s: test listener on %s, want 127.0.0.1:1", tc.addr, l.TestAddr())
		}
	}
}

func TestListenAddressRefusedWithFileAndLine(t *testing.T) {
	for addr, want := range map[string]string{
		"localhost":      `cutover.yaml:8:7: environments.production.listen.address: "localhost" is not an IP address`,
		"0.0.0.0:80":     `cutover.yaml:8:7: environments.production.listen.address: "0.0.0.0:80" is not an IP address`,
		"fe80::1%eth0":   `environments.production.listen.address: "fe80::1%eth0" has a zone`,
		"224.0.0.1":      `environments.production.listen.address: "224.0.0.1" is a multicast address`,
		"10.0.0.256":     `"10.0.0.256" is not an IP address`,
		"127.0.0.1 ":     `"127.0.0.1 " is not an IP address`,
		"http://0.0.0.0": `is not an IP address`,
	} {
		y := listenBase + "    listen:\n      address: \"" + addr + "\"\n      port: 70000\n"
		_, err := Parse("cutover.yaml", []byte(y))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("address %q: want %q in:\n%v", addr, want, err)
		}
		// Every problem in one run: the port too.
		if err == nil || !strings.Contains(err.Error(), "environments.production.listen.port: 70000 is out of range") {
			t.Errorf("address %q: the bad port is not reported too:\n%v", addr, err)
		}
	}
}

package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkProxy compares requests straight to an upstream with requests
// through the proxy to the same upstream, over pooled keep-alive connections.
func BenchmarkProxy(b *testing.B) {
	u := upstream(b, "hello")
	addr := freeAddr(b)
	p := newTestProxy(b, Options{})
	if err := p.Apply(context.Background(), State{Listeners: []Listener{oneRoute(addr, WeightedTarget{"e/u", 1})}, TargetGroups: []TargetGroup{tgOf("e/u", u)}}); err != nil {
		b.Fatal(err)
	}
	waitState(b, p, "e/u", "healthy", 1)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
	for _, c := range []struct{ name, url string }{{"direct", u.URL + "/"}, {"proxy", "http://" + addr + "/"}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(c.url)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}

// BenchmarkIdleConnectionMemory reports what an idle keep-alive client
// connection holds in the proxy (heap and stacks, KiB/conn), on a TLS
// listener (the fasthttp server) and on a plain one (the loops): 1,000
// connections, each after one request, opened by a child process (this
// test binary, as TestIdleClientsHelper) so that only the proxy's memory
// is measured. go test -run '^$' -bench IdleConnectionMemory -benchtime 1x
func BenchmarkIdleConnectionMemory(b *testing.B) {
	cert, key, _ := selfSigned(b, b.TempDir(), "m", "app.example")
	for _, tlsOn := range []bool{true, false} {
		b.Run(map[bool]string{true: "tls", false: "plain"}[tlsOn], func(b *testing.B) {
			p := newTestProxy(b, Options{})
			addr := freeAddr(b)
			l := oneRouteNamed("m/https", addr, "m/app")
			l.Limits = Limits{MaxClientConns: 5000}
			if tlsOn {
				l.TLS = &TLS{CertFile: cert, KeyFile: key}
			}
			if err := p.Apply(context.Background(), State{Listeners: []Listener{l}, TargetGroups: []TargetGroup{tgOf("m/app", upstream(b, "ok"))}}); err != nil {
				b.Fatal(err)
			}
			waitState(b, p, "m/app", "healthy", 1)
			heap := func() uint64 {
				runtime.GC()
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return ms.HeapInuse + ms.StackInuse
			}
			const n = 1000
			var total float64
			for range b.N {
				before := heap()
				cmd := exec.Command(os.Args[0], "-test.run", "^TestIdleClientsHelper$")
				cmd.Env = append(os.Environ(), "CUTOVER_IDLE_CLIENTS="+addr, "CUTOVER_IDLE_N="+strconv.Itoa(n))
				if tlsOn {
					cmd.Env = append(cmd.Env, "CUTOVER_IDLE_CA="+cert)
				}
				in, _ := cmd.StdinPipe()
				out, _ := cmd.StdoutPipe()
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
					in.Close()
					cmd.Wait()
					b.Fatalf("the clients: %q", line)
				}
				time.Sleep(time.Second)
				total += float64(heap()-before) / n / 1024
				in.Close()
				cmd.Wait()
			}
			b.ReportMetric(total/float64(b.N), "KiB/conn")
		})
	}
}

// TestIdleClientsHelper is BenchmarkIdleConnectionMemory's child: it
// opens the connections, sends one request on each, says "ready" and holds
// them until its stdin closes. Skipped when run as a test.
func TestIdleClientsHelper(t *testing.T) {
	addr := os.Getenv("CUTOVER_IDLE_CLIENTS")
	if addr == "" {
		t.Skip("BenchmarkIdleConnectionMemory's child process")
	}
	n, _ := strconv.Atoi(os.Getenv("CUTOVER_IDLE_N"))
	var cfg *tls.Config
	if f := os.Getenv("CUTOVER_IDLE_CA"); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cfg = &tls.Config{RootCAs: pool, ServerName: "app.example", NextProtos: []string{"http/1.1"}}
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if cfg != nil {
			c = tls.Client(c, cfg)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: app.example\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.SetDeadline(time.Time{})
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}

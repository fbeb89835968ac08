package proxy

import (
	"context"
	"io"
	"net/http"
	"testing"
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

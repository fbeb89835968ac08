package local

import (
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/proxy"
)

// withEdge gives a listener the environment's proxy limits and trusted
// proxies (cutover.yaml environments.ENV.proxy); unset ones keep the proxy's
// defaults.
func withEdge(l proxy.Listener, e *config.Edge) proxy.Listener {
	if e == nil {
		return l
	}
	l.TrustedProxies = e.TrustedProxies
	l.Limits = proxy.Limits{
		ReadHeaderTimeout: proxy.Duration(e.ReadHeaderTimeout.Std()),
		BodyIdleTimeout:   proxy.Duration(e.BodyIdleTimeout.Std()),
		IdleTimeout:       proxy.Duration(e.IdleTimeout.Std()),
		TargetTimeout:     proxy.Duration(e.TargetTimeout.Std()),
		MaxHeaderBytes:    e.MaxHeaderBytes,
		BodyMinRate:       e.BodyMinRate,
		MaxBodyBytes:      e.MaxBodyBytes,
		TunnelIdleTimeout: proxy.Duration(e.TunnelIdleTimeout.Std()),
		MaxClientConns:    e.MaxClientConns,
	}
	return l
}

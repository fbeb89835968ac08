package server

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/webhook"
)

// DaemonOptions are `cutover serve`'s settings.
type DaemonOptions struct {
	Addr                string
	PublicHosts         []string
	TLSCert, TLSKey     string
	BehindProxy         bool
	Grace               time.Duration
	Repo, ConfigPath    string // the repository executions check out, and cutover.yaml in it
	GitHubSecret        []byte // webhook secrets, from the environment
	GenericSecret       string
	Output              io.Writer // the pipeline's live log lines; nil: none
	Log                 *slog.Logger
	OnReady             func(url string) // called once the API listens
	ProxySuperviseEvery time.Duration    // default 2s
}

// Serve runs the daemon for m's project until ctx ends: the pipeline
// engine and its queue, the webhook receiver, the API (deploys and
// rollbacks through m), and a supervisor that starts the load balancer
// again whenever it stops answering. Deployments a killed controller left
// behind are reconciled when it starts.
func Serve(ctx context.Context, m *release.Manager, o DaemonOptions) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	m.Log = log
	if tokens, err := m.Store.ListTokens(ctx, false); err == nil && len(tokens) == 0 {
		log.Warn("no API tokens yet: every /v1 call except /v1/health is refused; create one with `cutover token create NAME --role viewer|deployer|approver|admin`")
	}
	eng, stop, err := m.Engine(ctx, o.Output)
	if err != nil {
		return err
	}
	defer stop()
	srv := &Server{
		Config: m.Config, Store: m.Store, Engine: eng, Releases: m, Addr: o.Addr, Repo: o.Repo, ConfigPath: o.ConfigPath,
		Grace: o.Grace, Log: log, Proxy: proxy.NewClient(m.Home),
		PublicHosts: o.PublicHosts, TLSCert: o.TLSCert, TLSKey: o.TLSKey, BehindProxy: o.BehindProxy,
		OnStart: func(ctx context.Context) {
			for _, env := range m.Config.EnvironmentNames() {
				if err := m.Reconcile(ctx, env); err != nil {
					log.Warn("reconciling", "environment", env, "err", err)
				}
			}
		},
	}
	dash := newDashboard(m, o.TLSCert != "" || o.BehindProxy, log) // dashboard.go
	defer dash.Close()
	go func() { <-ctx.Done(); dash.Close() }() // its live streams end before the HTTP server's shutdown waits for them
	srv.Dashboard = dash
	srv.Webhooks = webhook.Handler(webhook.HandlerConfig{
		GitHubSecret:  o.GitHubSecret,
		GenericSecret: o.GenericSecret,
		Logger:        log,
		OnTrigger:     func(wt webhook.Trigger) error { return srv.WebhookTrigger(context.WithoutCancel(ctx), wt) },
	})
	// Supervise the data plane: if the proxy process dies, start it
	// again; it serves its persisted routes at once.
	every := o.ProxySuperviseEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	go m.SuperviseProxy(ctx, every)
	if o.OnReady != nil {
		go func() {
			<-srv.Ready()
			scheme := "http"
			if o.TLSCert != "" {
				scheme = "https"
			}
			o.OnReady(scheme + "://" + srv.Address())
		}()
	}
	err = srv.Run(ctx)
	select {
	case <-srv.Ready():
	default: // it never listened (its address is taken): leave no load balancer behind
		m.StopIdleProxy(context.WithoutCancel(ctx))
	}
	return err
}

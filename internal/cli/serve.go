package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/server"
	"github.com/cutoverdev/cutover/internal/webhook"
	"github.com/spf13/cobra"
)

// Webhook secrets come from the environment, never from cutover.yaml.
const (
	envGitHubSecret  = "CUTOVER_GITHUB_WEBHOOK_SECRET"
	envGenericSecret = "CUTOVER_WEBHOOK_SECRET"
)

type serveCmd struct {
	addr            string
	grace           time.Duration
	publicHosts     []string
	tlsCert, tlsKey string
	behindProxy     bool
}

func newServeCmd(g *globals) *cobra.Command {
	c := &serveCmd{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: pipeline queue, webhooks, branch polling and the JSON API",
		Long: "Hosts the pipeline engine, the webhook receiver (POST /webhooks/github with\n" +
			envGitHubSecret + ", POST /webhooks/generic with " + envGenericSecret + "), branch polling\n" +
			"(pipeline.source.poll) and a JSON API (/v1/..., bearer tokens: see `cutover token`). It starts the load balancer if it is not\n" +
			"running; the load balancer stays its own process. SIGTERM stops accepting work, gives a\n" +
			"running execution --grace to finish, then cancels it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := server.CheckExposure(c.addr, c.tlsCert, c.tlsKey, c.behindProxy); err != nil {
				return usageError{strings.TrimPrefix(err.Error(), "cutover serve: ")}
			}
			m, err := g.manager(ctx)
			if err != nil {
				return err
			}
			defer m.Close()
			repo, configPath, err := release.RepoOf(ctx, g.file)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			m.Log = log
			if tokens, err := m.Store.ListTokens(ctx, false); err == nil && len(tokens) == 0 {
				log.Warn("no API tokens yet: every /v1 call except /v1/health is refused; create one with `cutover token create NAME --role viewer|deployer|approver|admin`")
			}
			eng, stop, err := m.Engine(ctx, g.pipelineOutput())
			if err != nil {
				return err
			}
			defer stop()
			srv := &server.Server{
				Config: m.Config, Store: m.Store, Engine: eng, Releases: m, Addr: c.addr, Repo: repo, ConfigPath: configPath,
				Grace: c.grace, Log: log,
				PublicHosts: c.publicHosts, TLSCert: c.tlsCert, TLSKey: c.tlsKey, BehindProxy: c.behindProxy,
				OnStart: func(ctx context.Context) {
					for _, env := range m.Config.EnvironmentNames() {
						if err := m.Reconcile(ctx, env); err != nil {
							log.Warn("reconciling", "environment", env, "err", err)
						}
					}
				},
			}
			srv.Webhooks = webhook.Handler(webhook.HandlerConfig{
				GitHubSecret:  []byte(os.Getenv(envGitHubSecret)),
				GenericSecret: os.Getenv(envGenericSecret),
				Logger:        log,
				OnTrigger:     func(wt webhook.Trigger) error { return srv.WebhookTrigger(context.WithoutCancel(ctx), wt) },
			})
			// Supervise the data plane: if the proxy process dies, start it
			// again; it serves its persisted routes at once.
			go m.SuperviseProxy(ctx, 2*time.Second)
			go func() {
				<-srv.Ready()
				fmt.Fprintf(g.stderr, "cutover serve: API and webhooks on %s://%s (repository %s, %s)\n", map[bool]string{true: "https", false: "http"}[c.tlsCert != ""], srv.Address(), repo, filepath.ToSlash(configPath))
			}()
			return srv.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&c.addr, "addr", "127.0.0.1:8790", "address of the API and webhook receiver")
	cmd.Flags().StringSliceVar(&c.publicHosts, "public-host", nil, "a name the API is reached by besides --addr (e.g. ci.example.com); requests with another Host are refused")
	cmd.Flags().StringVar(&c.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM), with --tls-key")
	cmd.Flags().StringVar(&c.tlsKey, "tls-key", "", "the private key (PEM) of --tls-cert")
	cmd.Flags().BoolVar(&c.behindProxy, "behind-proxy", false, "a proxy in front terminates TLS: allow a non-loopback --addr without --tls-cert")
	cmd.Flags().DurationVar(&c.grace, "grace", 30*time.Second, "how long a running execution may go on after SIGTERM")
	return cmd
}

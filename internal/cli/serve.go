package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cutoverdev/cutover/internal/pipeline"
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
	addr  string
	grace time.Duration
}

func newServeCmd(g *globals) *cobra.Command {
	c := &serveCmd{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: pipeline queue, webhooks, branch polling and the JSON API",
		Long: "Hosts the pipeline engine, the webhook receiver (POST /webhooks/github with\n" +
			envGitHubSecret + ", POST /webhooks/generic with " + envGenericSecret + "), branch polling\n" +
			"(pipeline.source.poll) and a JSON API (/v1/...). It starts the load balancer if it is not\n" +
			"running; the load balancer stays its own process. SIGTERM stops accepting work, gives a\n" +
			"running execution --grace to finish, then cancels it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := openSession(ctx, g, "", true)
			if err != nil {
				return err
			}
			defer s.close()
			repo, configPath, err := repoOf(ctx, g)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			eng, stop, err := s.engine(ctx, g)
			if err != nil {
				return err
			}
			defer stop()
			eng.Log = log
			srv := &server.Server{
				Config: s.cfg, Store: s.store, Engine: eng, Addr: c.addr, Repo: repo, ConfigPath: configPath,
				Grace: c.grace, Log: log,
				OnStart: func(ctx context.Context) {
					for _, env := range s.cfg.EnvironmentNames() {
						if err := reconcileOrphan(ctx, g, s, env); err != nil {
							log.Warn("reconciling", "environment", env, "err", err)
						}
					}
				},
			}
			srv.Webhooks = webhook.Handler(webhook.HandlerConfig{
				GitHubSecret:  []byte(os.Getenv(envGitHubSecret)),
				GenericSecret: os.Getenv(envGenericSecret),
				Logger:        log,
				OnTrigger: func(wt webhook.Trigger) error {
					kind := pipeline.TriggerPush
					if wt.Kind == webhook.KindPullRequest {
						kind = pipeline.TriggerPullRequest
					}
					t := pipeline.Trigger{Kind: kind, Branch: wt.Branch, Commit: wt.Commit, PR: wt.PRNumber, Base: wt.Base}
					if t.Commit != "" {
						// A branch runs only commits on it: refuse at once, with the reason.
						if err := pipeline.Admit(ctx, pipeline.Trigger{Kind: kind, Repo: repo, Branch: t.Branch, Commit: t.Commit}); err != nil {
							return &webhook.IgnoredError{Reason: err.Error()}
						}
					}
					srv.Enqueue(context.WithoutCancel(ctx), t)
					return nil
				},
			})
			// Supervise the data plane: if the proxy process dies, start it
			// again; it serves its persisted routes at once.
			go func() {
				t := time.NewTicker(2 * time.Second)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						if _, err := s.proxy.Ping(ctx); err != nil && ctx.Err() == nil {
							log.Warn("the proxy does not answer: starting it again", "err", err)
							if _, err := startProxy(ctx, s.home); err != nil {
								log.Error("restarting the proxy", "err", err)
							}
						}
					}
				}
			}()
			go func() {
				<-srv.Ready()
				fmt.Fprintf(g.stderr, "cutover serve: API and webhooks on http://%s (repository %s, %s)\n", srv.Address(), repo, filepath.ToSlash(configPath))
			}()
			return srv.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&c.addr, "addr", "127.0.0.1:8790", "address of the API and webhook receiver")
	cmd.Flags().DurationVar(&c.grace, "grace", 30*time.Second, "how long a running execution may go on after SIGTERM")
	return cmd
}

package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/server"
	"github.com/spf13/cobra"
)

func newServeCmd(g *globals) *cobra.Command {
	var o server.DaemonOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: pipeline queue, webhooks, branch polling, the JSON API and the web dashboard",
		Long: "Hosts the pipeline engine, the webhook receiver (POST /webhooks/github with\n" +
			server.EnvGitHubSecret + ", POST /webhooks/generic with " + server.EnvGenericSecret + "), branch polling\n" +
			"(pipeline.source.poll) and a JSON API (/v1/..., bearer tokens: see `cutover token`). It starts the load balancer if it is not\n" +
			"running; the load balancer stays its own process. SIGTERM stops accepting work, gives a\n" +
			"running execution --grace to finish, then cancels it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := server.CheckExposure(o.Addr, o.TLSCert, o.TLSKey, o.BehindProxy); err != nil {
				return release.UsageError{Msg: strings.TrimPrefix(err.Error(), "cutover serve: ")}
			}
			return withManager(ctx, g, func(m *release.Manager) error {
				var err error
				if o.Repo, o.ConfigPath, err = release.RepoOf(ctx, g.file); err != nil {
					return err
				}
				o.SecretsFromEnv()
				o.Output = g.pipelineOutput()
				o.Log = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
				o.OnReady = func(url string) {
					fmt.Fprintf(g.stderr, "cutover serve: dashboard, API and webhooks on %s (repository %s, %s); log in with `%s`\n",
						url, o.Repo, filepath.ToSlash(o.ConfigPath), dashboardCommand(url, g.home))
				}
				return server.Serve(ctx, m, o)
			})
		},
	}
	cmd.Flags().StringVar(&o.Addr, "addr", defaultDaemonAddr, "address of the API and webhook receiver")
	cmd.Flags().StringSliceVar(&o.PublicHosts, "public-host", nil, "a name the API is reached by besides --addr (e.g. ci.example.com); requests with another Host are refused")
	cmd.Flags().StringVar(&o.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM), with --tls-key")
	cmd.Flags().StringVar(&o.TLSKey, "tls-key", "", "the private key (PEM) of --tls-cert")
	cmd.Flags().BoolVar(&o.BehindProxy, "behind-proxy", false, "a proxy in front terminates TLS: allow a non-loopback --addr without --tls-cert")
	cmd.Flags().DurationVar(&o.Grace, "grace", 30*time.Second, "how long a running execution may go on after SIGTERM")
	return cmd
}

// defaultDaemonAddr is where `cutover serve` listens, and `cutover dashboard`
// looks for it, unless --addr says otherwise.
const defaultDaemonAddr = "127.0.0.1:8790"

// dashboardCommand is the `cutover dashboard` command that logs in to the
// daemon serving at url: with its --addr unless it is the default one, and
// with --home when the daemon was given one (the link is stored in that home's
// store, and only the daemon reading it accepts it).
func dashboardCommand(url, home string) string {
	c := "cutover dashboard"
	if addr := url[strings.Index(url, "://")+len("://"):]; addr != defaultDaemonAddr {
		c += " --addr " + addr
	}
	if home != "" {
		c += " --home " + shellWord(home)
	}
	return c
}

// shellWord is s as one word of a POSIX shell command line.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func newProxyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "The built-in load balancer: a long-lived process that keeps serving whatever its controllers do",
	}
	sub := func(use, short string, run func(ctx context.Context, home string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
			RunE: g.withHome(func(ctx context.Context, home string, _ []string) error { return run(ctx, home) })}
	}
	keep := sub("keep", "Run the load balancer (`proxy run`) as a child and start it again if it dies: what `proxy start` and `up` start detached",
		func(ctx context.Context, home string) error { return release.KeepProxy(ctx, home) })
	keep.Hidden = true
	run := sub("run", "Run the load balancer in the foreground (`proxy start` and `up` start it detached, restarted if it dies)",
		func(ctx context.Context, home string) error { return release.RunProxy(ctx, home, Version) })
	start := sub("start", "Start the load balancer detached, unless it already runs", func(ctx context.Context, home string) error {
		h, err := release.EnsureProxy(ctx, home)
		return g.show(h, err, func(w io.Writer) { fmt.Fprintf(w, "proxy running (pid %d)\n", h.PID) })
	})
	var grace time.Duration
	stop := sub("stop", "Stop the load balancer (its routes stay persisted for the next start)", func(ctx context.Context, home string) error {
		err := release.StopProxy(ctx, home, grace)
		return g.show(map[string]bool{"stopped": true}, err, func(w io.Writer) { fmt.Fprintln(w, "proxy stopped") })
	})
	stop.Flags().DurationVar(&grace, "grace", 10*time.Second, "how long in-flight requests may take before the proxy is killed")
	restart := sub("restart", "Replace the load balancer's process (a new cutover version, new listener limits) without refusing a connection", func(ctx context.Context, home string) error {
		h, err := release.RestartProxy(ctx, home)
		return g.show(h, err, func(w io.Writer) { fmt.Fprintf(w, "proxy restarted (pid %d)\n", h.PID) })
	})
	status := sub("status", "Show the load balancer's process and the health of every target", func(ctx context.Context, home string) error {
		res, err := release.GetProxyStatus(ctx, home)
		return g.show(res, err, func(w io.Writer) {
			fmt.Fprintf(w, "proxy running (pid %d)\n", res.Proxy.PID)
			for _, t := range res.Targets {
				fmt.Fprintf(w, "  %-32s %-14s %-21s %s\n", t.Group, shortID(t.ID), t.Addr, t.State)
			}
		})
	})
	cmd.AddCommand(run, keep, start, stop, restart, status)
	return cmd
}

// Package registry is cutover's embedded OCI image registry: the real
// distribution registry (github.com/distribution/distribution/v3) served
// in-process on a loopback address, with filesystem storage in a directory
// cutover owns (normally $CUTOVER_HOME/registry).
//
// Builds push their images here and deploys pull them by digest, so a
// deployment names exactly the bytes that were built and tested.
//
// Contract:
//
//   - Start binds the address, opens the storage directory and serves; it
//     returns once the registry accepts connections. The context bounds the
//     start only: the registry runs until Close.
//   - Reads (pulls) need no credential; pushes need Options.Credential, as
//     user Username (cutover keeps it in $CUTOVER_HOME/registry.credential,
//     LoadCredential); without one the registry is read-only. Deletes need
//     the credential and Options.AllowDelete. Start still refuses any
//     address that is not loopback (127.0.0.0/8, ::1, localhost): the
//     engine talks plain HTTP to loopback registries without extra
//     configuration, and nothing else should reach it.
//   - Close stops accepting connections, waits for requests in flight until
//     ctx ends, then drops the rest. It is safe to call more than once.
//   - Content survives a restart: a new Start on the same Dir serves every
//     manifest and blob pushed before. Two registries must not share a Dir at
//     the same time.
//   - A *Registry is safe for concurrent use.
//
// Logging: distribution logs through logrus. Start routes logrus's standard
// logger (process-wide, once) to log/slog and silences its own output: routine
// request logs become Debug, client errors (4xx) Debug, server errors Error.
package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"

	// The filesystem storage driver registers itself with the driver factory.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Options configure Start.
type Options struct {
	Dir    string       // storage root, created if missing (required)
	Addr   string       // listen address; default 127.0.0.1:0 (a free port). Must be loopback.
	Logger *slog.Logger // default slog.Default()
	// Credential is the password of Username, needed to push (and delete).
	// Empty: nobody can push.
	Credential string
	// AllowDelete enables deleting manifests and blobs (with the credential).
	AllowDelete bool
}

// Registry is a running embedded registry.
type Registry struct {
	addr string
	dir  string
	srv  *http.Server
	app  *handlers.App
	log  *slog.Logger
	done chan struct{} // closed when Serve returns

	closeOnce sync.Once
	closeErr  error
}

// Start serves a registry on o.Addr with its storage in o.Dir.
func Start(ctx context.Context, o Options) (*Registry, error) {
	if o.Dir == "" {
		return nil, errors.New("registry: no storage directory given (set Options.Dir, e.g. $CUTOVER_HOME/registry)")
	}
	addr, err := loopbackAddr(o.Addr)
	if err != nil {
		return nil, err
	}
	if err := checkDir(o.Dir); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "registry")
	routeLogrus(log)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("registry: cannot listen on %s: %w (choose another port, or 127.0.0.1:0 for a free one)", addr, err)
	}

	// The app keeps its own context for background work (upload purging);
	// it must outlive Start's context and end with Close.
	app, err := newApp(context.WithoutCancel(ctx), config(o.Dir, o.AllowDelete))
	if err != nil {
		ln.Close()
		return nil, err
	}
	r := &Registry{
		addr: ln.Addr().String(),
		dir:  o.Dir,
		app:  app,
		log:  log,
		done: make(chan struct{}),
		srv: &http.Server{
			Handler:           guard(app, o.Credential, o.AllowDelete),
			ReadHeaderTimeout: 30 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
	}
	go func() {
		defer close(r.done)
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("registry stopped serving", "addr", r.addr, "err", err)
		}
	}()
	log.Info("registry started", "addr", r.addr, "dir", o.Dir)
	return r, nil
}

// Addr is the host:port the registry serves on, e.g. 127.0.0.1:41234. Image
// references to it look like Addr()/project/service:tag.
func (r *Registry) Addr() string { return r.addr }

// Ref is the image reference for repo and tag in this registry:
// Addr()/repo:tag.
func (r *Registry) Ref(repo, tag string) string { return r.addr + "/" + repo + ":" + tag }

// Close stops the registry: no new connections, requests in flight may finish
// until ctx ends, after which they are cut. Later calls return the first
// call's result.
func (r *Registry) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		err := r.srv.Shutdown(ctx)
		if err != nil {
			// Deadline passed with requests in flight: cut them.
			r.srv.Close()
			err = fmt.Errorf("registry on %s: stopped before requests in flight finished: %w", r.addr, err)
		}
		<-r.done
		if serr := r.app.Shutdown(); serr != nil && err == nil {
			err = fmt.Errorf("registry on %s: %w", r.addr, serr)
		}
		r.closeErr = err
		r.log.Info("registry stopped", "addr", r.addr)
	})
	return r.closeErr
}

// config is the registry configuration: filesystem storage under dir, an
// in-memory blob descriptor cache, no access log (guard checks credentials).
func config(dir string, allowDelete bool) *configuration.Configuration {
	c := &configuration.Configuration{
		Version: configuration.CurrentVersion,
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": dir},
			"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
			"delete":     configuration.Parameters{"enabled": allowDelete},
		},
	}
	c.Log.AccessLog.Disabled = true
	// The secret signs upload state between the requests of one push. One
	// process serves the registry, so a fresh random one per start is right
	// (and keeps distribution from warning that none was set).
	c.HTTP.Secret = rand.Text()
	return c
}

// newApp builds the distribution app. NewApp panics on configuration errors;
// our configuration is fixed, but a panic must still become an error.
func newApp(ctx context.Context, c *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			app, err = nil, fmt.Errorf("registry: cannot start the distribution registry: %v", p)
		}
	}()
	return handlers.NewApp(ctx, c), nil
}

// checkDir creates dir if needed and makes sure it is a writable directory,
// so a bad path fails at start, not at the first push.
func checkDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("registry: cannot create storage directory %s: %w (choose a writable directory)", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("registry: storage directory %s is not writable: %w (fix its permissions or choose another directory)", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// Package local is cutover's local platform: an environment's services run
// as tasks on Docker Engine and are routed through the built-in load
// balancer (the `cutover proxy` process). Platform implements the
// deployment controller's contract; Down removes an environment.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/proxy"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
)

// Env is one environment of a project on the local platform.
type Env struct {
	Config  *config.Config
	Name    string
	Runtime *docker.Runtime
	Proxy   *proxy.Client // nil when no proxy runs
	Store   *store.Store
}

func (e *Env) scope() string { return Scope(e.Config.Project, e.Name) }

func (e *Env) labels() docker.Labels {
	return docker.Labels{Project: e.Config.Project, Environment: e.Name}
}

// NewRevision derives an immutable revision of one environment from the
// images and each service's runtime config: the same project, environment,
// images and config give the same id. Revisions are per environment: a
// commit promoted from staging to production gets a production revision of
// its own that names the very images (by digest) of the staging one.
func NewRevision(cfg *config.Config, env string, images map[string]string, source string) store.Revision {
	rev := store.Revision{Project: cfg.Project, Environment: env, Services: map[string]store.ServiceRevision{}, Source: source, CreatedAt: time.Now().UTC()}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\n", cfg.Project, env)
	for _, name := range cfg.ServiceNames() {
		sr := store.ServiceRevision{Image: images[name], ConfigHash: cfg.Services[name].ConfigHash()}
		rev.Services[name] = sr
		fmt.Fprintf(h, "%s\x00%s\x00%s\n", name, sr.Image, sr.ConfigHash)
	}
	rev.ID = "r-" + hex.EncodeToString(h.Sum(nil))[:12]
	return rev
}

// saveState records the environment's state and an event in one transaction.
func (e *Env) saveState(ctx context.Context, revision, status, kind, message string) error {
	raw, err := json.Marshal(map[string]string{"status": status})
	if err != nil {
		return err
	}
	return e.Store.Tx(ctx, func(tx *store.Tx) error {
		if _, err := tx.PutEnvState(ctx, store.EnvState{Project: e.Config.Project, Environment: e.Name, Revision: revision, Status: status, Details: raw}, -1); err != nil {
			return err
		}
		_, err := tx.AppendEvent(ctx, store.Event{Project: e.Config.Project, Environment: e.Name, Kind: kind, Message: message})
		return err
	})
}

package docker

import (
	"context"

	"github.com/cutoverdev/cutover/internal/enginelock"
)

// imageLockPath is the image lock file of this runtime's engine (see
// internal/enginelock: why builds and removals of images take it).
func (r *Runtime) imageLockPath() string { return enginelock.Path(r.host) }

// lockImages takes the engine's image lock, shared (builds) or exclusive
// (removals), waiting until ctx ends. The returned function releases it.
func (r *Runtime) lockImages(ctx context.Context, exclusive bool) (func(), error) {
	return enginelock.Lock(ctx, r.host, exclusive, r.log)
}

package docker

import "github.com/moby/moby/client"

// EngineClient is the underlying Engine API client, for packages that manage
// engine objects this package does not model, such as the networks, volumes
// and containers of a compose integration run (internal/integration). It
// shares the runtime's connection: do not close it.
func (r *Runtime) EngineClient() *client.Client { return r.client }

package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/cutoverdev/cutover/internal/atomicfile"
	"github.com/cutoverdev/cutover/internal/registry"
)

// startRegistry serves the embedded registry from $CUTOVER_HOME/registry on
// the loopback address it used last time, so pushed references stay valid
// across runs; a new port is picked (and kept) when that one is taken.
func (s *session) startRegistry(ctx context.Context) (*registry.Registry, error) {
	dir := filepath.Join(s.home, "registry")
	addrFile := filepath.Join(s.home, "registry.addr")
	if b, err := os.ReadFile(addrFile); err == nil {
		if r, err := registry.Start(ctx, registry.Options{Dir: dir, Addr: strings.TrimSpace(string(b))}); err == nil {
			return r, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	r, err := registry.Start(ctx, registry.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(addrFile, []byte(r.Addr()+"\n"), 0o600); err != nil {
		_ = r.Close(ctx)
		return nil, err
	}
	return r, nil
}

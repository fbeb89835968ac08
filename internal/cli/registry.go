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
//
// Pushes need the credential kept in $CUTOVER_HOME/registry.credential
// (0600, generated once); the Docker runtime is given it, so cutover's own
// pushes and pulls authenticate without any setup. Deletes stay off.
func (s *session) startRegistry(ctx context.Context) (*registry.Registry, error) {
	cred, err := registry.LoadCredential(s.home)
	if err != nil {
		return nil, err
	}
	o := registry.Options{Dir: filepath.Join(s.home, "registry"), Credential: cred}
	r, err := startRegistryAt(ctx, o, filepath.Join(s.home, "registry.addr"))
	if err != nil {
		return nil, err
	}
	if s.rt != nil {
		s.rt.UseRegistryCredential(r.Addr(), registry.Username, cred)
	}
	return r, nil
}

func startRegistryAt(ctx context.Context, o registry.Options, addrFile string) (*registry.Registry, error) {
	if b, err := os.ReadFile(addrFile); err == nil {
		o.Addr = strings.TrimSpace(string(b))
		if r, err := registry.Start(ctx, o); err == nil {
			return r, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	o.Addr = ""
	r, err := registry.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(addrFile, []byte(r.Addr()+"\n"), 0o600); err != nil {
		_ = r.Close(ctx)
		return nil, err
	}
	return r, nil
}

package cli

import (
	"context"
	"log/slog"

	"github.com/cutoverdev/cutover/internal/release"
)

// manager opens cutover.yaml's project and the store of the state
// directory for one command; deployment events are rendered on the
// terminal (or as JSON lines with --output json).
func (g *globals) manager(ctx context.Context) (*release.Manager, error) {
	home, err := g.homeDir()
	if err != nil {
		return nil, err
	}
	m, err := release.Open(ctx, g.file, home)
	if err != nil {
		return nil, err
	}
	m.Progress = newProgress(g).event
	m.Log = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return m, nil
}

// withManager runs fn with the project's Manager and closes it.
func withManager(ctx context.Context, g *globals, fn func(m *release.Manager) error) error {
	m, err := g.manager(ctx)
	if err != nil {
		return err
	}
	defer m.Close()
	return fn(m)
}

package store

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"
)

// TestIDIsRandomPerStoreAndKept: two databases get different IDs, and
// reopening one gives the same ID again.
func TestIDIsRandomPerStoreAndKept(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	idA, err := a.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(idA) {
		t.Fatalf("ID %q: want 32 hex digits", idA)
	}
	a, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if again, err := a.ID(ctx); err != nil || again != idA {
		t.Fatalf("reopened: ID %q, %v; want %q", again, err, idA)
	}
	b, err := Open(ctx, filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if idB, err := b.ID(ctx); err != nil || idB == idA {
		t.Fatalf("second store: ID %q, %v; want one different from %q", idB, err, idA)
	}
}

package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckFindsDamage: a sound database passes the integrity check; the same
// file with one of its pages overwritten fails it, naming the file.
func TestCheckFindsDamage(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cutover.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if _, err := s.AppendEvent(ctx, Event{Project: "shop", Environment: "production", Kind: "test", Message: strings.Repeat("x", 200) + string(rune('a'+i%26)), Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("sound database: %v", err)
	}
	s.Close()

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.Stat()
	// Overwrite the header of the last page (page size 4096, the one of
	// modernc's SQLite): a b-tree page of the events table.
	if _, err := f.WriteAt([]byte(strings.Repeat("\xff", 16)), info.Size()-4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("open after damaging an events page: %v", err)
	}
	defer s.Close()
	if err := s.Check(ctx); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("damaged database: %v, want an error naming %s", err, path)
	}
}

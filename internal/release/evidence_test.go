package release

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/store"
)

// An approver reads staging's figures as the evidence for the commit they
// approve: when staging serves another revision by then (redeployed by
// hand, or a later commit), or never ran the commit, the evidence says so
// instead of passing another revision's figures off as this one's.
func TestEvidenceSaysWhenStagingServesAnotherRevision(t *testing.T) {
	dir, home := t.TempDir(), t.TempDir()
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	y := "version: 1\nproject: shop\nservices:\n  web: { image: shop/web:1, port: 8000 }\n" +
		"environments:\n  staging: { listen: { port: 18180 } }\n  production: { listen: { port: 18190 }, promote_from: staging }\n"
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := Open(ctx, filepath.Join(dir, "cutover.yaml"), home)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, id := range []string{"r-1", "r-2"} {
		rev := store.Revision{ID: id, Project: "shop", Environment: "staging", Source: "test",
			Services: map[string]store.ServiceRevision{"web": {Image: "sha256:" + strings.Repeat("ab", 32)}}}
		if err := m.Store.CreateRevision(ctx, rev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Store.PutEnvState(ctx, store.EnvState{Project: "shop", Environment: "staging", Revision: "r-2", Status: "up"}, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ran, want string }{
		{"r-2", ""},
		{"r-1", "staging ran this commit as revision r-1 but now serves r-2: the figures, events and logs below are of r-2"},
		{"", "staging has not run this commit: the figures, events and logs below are of what it serves (revision r-2), not of the commit to approve"},
	} {
		ev := m.evidence(ctx, m.Config, "staging", c.ran).(StagingEvidence)
		if ev.Warning != c.want || ev.Revision != "r-2" {
			t.Errorf("evidence of staging for a commit it ran as %q: revision %q, warning %q; want r-2, %q", c.ran, ev.Revision, ev.Warning, c.want)
		}
	}
}

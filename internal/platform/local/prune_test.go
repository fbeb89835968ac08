package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// tinyImage builds a FROM scratch image holding one file with content, so
// each call makes a distinct image, labelled with project.
func tinyImage(t *testing.T, rt *docker.Runtime, project, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY f /f\nENTRYPOINT [\"/f\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := rt.Build(context.Background(), docker.BuildRequest{ContextDir: dir,
		Tags: []string{"cutover-prune-test/" + project + ":" + content}, Labels: map[string]string{docker.LabelProject: project}})
	if err != nil {
		t.Fatal(err)
	}
	return img.ID
}

func imageExists(rt *docker.Runtime, id string) bool {
	_, err := rt.ImageID(context.Background(), id)
	return err == nil
}

// TestPruneKeepsTheNewestRevisionsAndImagesInUse runs against the real
// engine: of four revisions of production, the newest two keep their
// images, the oldest keeps its image because a container uses it, the
// second oldest loses it; another project's image is never touched.
func TestPruneKeepsTheNewestRevisionsAndImagesInUse(t *testing.T) {
	testenv.RequireDocker(t)
	ctx := context.Background()
	rt, err := docker.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	var b [4]byte
	_, _ = rand.Read(b[:])
	project, other := "prune"+hex.EncodeToString(b[:]), "pruneother"+hex.EncodeToString(b[:])
	t.Cleanup(func() { testenv.RemoveProject(project); testenv.RemoveProject(other) })

	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ids []string
	start := time.Now().Add(-time.Hour).UTC()
	for i := range 4 {
		id := tinyImage(t, rt, project, fmt.Sprintf("r%d-%s", i, hex.EncodeToString(b[:])))
		ids = append(ids, id)
		rev := store.Revision{ID: fmt.Sprintf("r%d", i), Project: project, Environment: "production", Source: "test",
			Services: map[string]store.ServiceRevision{"web": {Image: id, ConfigHash: "h"}}, CreatedAt: start.Add(time.Duration(i) * time.Minute)}
		if err := st.CreateRevision(ctx, rev); err != nil {
			t.Fatal(err)
		}
	}
	otherID := tinyImage(t, rt, other, "other-"+hex.EncodeToString(b[:]))
	if out, err := exec.Command("docker", "create", "--label", docker.LabelProject+"="+project, ids[0]).CombinedOutput(); err != nil {
		t.Fatalf("docker create: %v %s", err, out)
	}

	opts := PruneOptions{Project: project, Environments: []string{"production", "staging"}, Keep: 2}
	// Young images are kept: a build may be running.
	young := opts
	young.MinAge = time.Hour
	if res, err := Prune(ctx, rt, st, young); err != nil || len(res.Removed) != 0 {
		t.Fatalf("min age 1h: removed %d, %v; want none", len(res.Removed), err)
	}
	dry := opts
	dry.DryRun = true
	res, err := Prune(ctx, rt, st, dry)
	if err != nil || len(res.Removed) != 1 || res.Removed[0].ID != ids[1] || !imageExists(rt, ids[1]) {
		t.Fatalf("dry run: %+v, %v; want %s listed and still there", res, err, ids[1])
	}
	res, err = Prune(ctx, rt, st, opts)
	if err != nil || len(res.Removed) != 1 || res.Removed[0].ID != ids[1] || res.Kept != 3 {
		t.Fatalf("prune: %+v, %v; want %s removed and 3 kept", res, err, ids[1])
	}
	for i, want := range []bool{true, false, true, true} {
		if imageExists(rt, ids[i]) != want {
			t.Errorf("image of revision r%d exists %v, want %v", i, !want, want)
		}
	}
	if !imageExists(rt, otherID) {
		t.Error("another project's image was removed")
	}
	if _, err := Prune(ctx, rt, st, PruneOptions{Project: project, Keep: 0}); err == nil {
		t.Error("keep 0 accepted")
	}
}

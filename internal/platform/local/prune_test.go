package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/runtime/docker"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// tinyImage builds a FROM scratch image holding one file with content, so
// each call makes a distinct image, labelled with project and, unless
// storeID is empty, with the store that built it.
func tinyImage(t *testing.T, rt *docker.Runtime, project, storeID, content string) string {
	t.Helper()
	labels := map[string]string{docker.LabelProject: project}
	if storeID != "" {
		labels[docker.LabelStore] = storeID
	}
	return labelledImage(t, rt, labels, content)
}

// labelledImage builds a distinct FROM scratch image (see tinyImage) with
// these labels, tagged with content.
func labelledImage(t *testing.T, rt *docker.Runtime, labels map[string]string, content string) string {
	t.Helper()
	project := labels[docker.LabelProject]
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY f /f\nENTRYPOINT [\"/f\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := rt.Build(context.Background(), docker.BuildRequest{ContextDir: dir,
		Tags: []string{"cutover-prune-test/" + project + ":" + content}, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	return img.ID
}

// pruneEngine connects to the real engine (failing loudly without one) and
// returns a random suffix for the test's project names.
func pruneEngine(t *testing.T) (*docker.Runtime, string) {
	t.Helper()
	testenv.RequireDocker(t)
	rt, err := docker.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	var b [4]byte
	_, _ = rand.Read(b[:])
	return rt, hex.EncodeToString(b[:])
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
	ctx := context.Background()
	rt, suffix := pruneEngine(t)
	project, other := "prune"+suffix, "pruneother"+suffix
	t.Cleanup(func() { testenv.RemoveProject(project); testenv.RemoveProject(other) })

	st := openStore(t)
	storeID, err := st.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	start := time.Now().Add(-time.Hour).UTC()
	for i := range 4 {
		id := tinyImage(t, rt, project, storeID, fmt.Sprintf("r%d-%s", i, suffix))
		ids = append(ids, id)
		rev := store.Revision{ID: fmt.Sprintf("r%d", i), Project: project, Environment: "production", Source: "test",
			Services: map[string]store.ServiceRevision{"web": {Image: id, ConfigHash: "h"}}, CreatedAt: start.Add(time.Duration(i) * time.Minute)}
		if err := st.CreateRevision(ctx, rev); err != nil {
			t.Fatal(err)
		}
	}
	otherID := tinyImage(t, rt, other, storeID, "other-"+suffix)
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

// sleeperContext writes a build context whose image runs a static binary
// that sleeps, so a container of it keeps running.
func sleeperContext(t *testing.T) string {
	t.Helper()
	src, dir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nimport \"time\"\n\nfunc main() { time.Sleep(10 * time.Minute) }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctxDir := filepath.Join(dir, "web")
	if err := os.Mkdir(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(ctxDir, "sleeper"), "main.go")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build sleeper: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY sleeper /sleeper\nENTRYPOINT [\"/sleeper\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildRevisions builds the project n times with BuildImages, as `up` does,
// labelled with st's ID, records each build as a revision of production a
// minute after the previous one, and returns the image IDs, oldest first.
func buildRevisions(t *testing.T, rt *docker.Runtime, st *store.Store, cfg *config.Config, n int) []string {
	t.Helper()
	ctx := context.Background()
	storeID, err := st.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour).UTC()
	var ids []string
	for i := range n {
		built, err := BuildImages(ctx, rt, cfg, NewBuildID(time.Now()), storeID, nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, built["web"])
		rev := store.Revision{ID: fmt.Sprintf("r%d", i), Project: cfg.Project, Environment: "production", Source: "test",
			Services: map[string]store.ServiceRevision{"web": {Image: built["web"], ConfigHash: "h"}}, CreatedAt: start.Add(time.Duration(i) * time.Minute)}
		if err := st.CreateRevision(ctx, rev); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestPruneNeverRemovesAnotherStoresImages runs against the real engine:
// two stores (two CUTOVER_HOMEs) build the SAME project three times each.
// Pruning one removes only its own old images; the other store's images,
// and an image built before images carried a store (no label), are skipped
// with the reason, even though they are older and no revision of the
// pruning store names them. An image a running container uses (a container
// without any cutover label) is kept, and a dry run removes nothing.
func TestPruneNeverRemovesAnotherStoresImages(t *testing.T) {
	ctx := context.Background()
	rt, suffix := pruneEngine(t)
	project := "prunestores" + suffix
	var container string
	t.Cleanup(func() {
		if container != "" {
			_ = exec.Command("docker", "rm", "-f", container).Run()
		}
		testenv.RemoveProject(project)
	})
	dir := sleeperContext(t)
	cfg, err := config.ParseDir("cutover.yaml", dir, []byte("version: 1\nproject: "+project+
		"\nservices:\n  web:\n    build: { context: web }\n    port: 8080\nenvironments:\n  production:\n    listen: { port: 9080 }\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, other := openStore(t), openStore(t)
	idA, _ := a.ID(ctx)
	idB, _ := other.ID(ctx)
	imagesA := buildRevisions(t, rt, a, cfg, 3)
	imagesB := buildRevisions(t, rt, other, cfg, 3)
	legacy := tinyImage(t, rt, project, "", "legacy-"+suffix)

	// Every image BuildImages made carries its store's ID.
	all, err := rt.ProjectImages(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range all {
		switch {
		case slices.Contains(imagesA, im.ID) && im.Labels[docker.LabelStore] != idA,
			slices.Contains(imagesB, im.ID) && im.Labels[docker.LabelStore] != idB:
			t.Errorf("image %s labels %v: want its store's ID", im.ID, im.Labels)
		}
	}

	// The oldest image of store A runs in a container that has no cutover label.
	out, err := exec.Command("docker", "run", "-d", "--network", "none", imagesA[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v %s", err, out)
	}
	container = strings.TrimSpace(string(out))

	opts := PruneOptions{Project: project, Environments: []string{"production"}, Keep: 1}
	skippedFrom := func(res PruneResult) map[string]string {
		m := map[string]string{}
		for _, s := range res.Skipped {
			m[s.ID] = s.Reason
		}
		return m
	}
	checkSkipped := func(res PruneResult, others []string) {
		t.Helper()
		got := skippedFrom(res)
		if len(got) != len(others)+1 || !strings.Contains(got[legacy], "no "+docker.LabelStore+" label") {
			t.Errorf("skipped %v: want the legacy image (no store label) and %d of the other store", got, len(others))
		}
		for _, id := range others {
			if !strings.Contains(got[id], "another cutover store") {
				t.Errorf("image %s of the other store: skipped reason %q", id, got[id])
			}
		}
	}
	exist := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if !imageExists(rt, id) {
				t.Errorf("image %s was removed", id)
			}
		}
	}

	dry := opts
	dry.DryRun = true
	res, err := Prune(ctx, rt, a, dry)
	if err != nil || len(res.Removed) != 1 || res.Removed[0].ID != imagesA[1] || res.Kept != 2 {
		t.Fatalf("dry run of store A: %+v, %v; want only %s listed, 2 kept", res, err, imagesA[1])
	}
	checkSkipped(res, imagesB)
	exist(append(append([]string{legacy}, imagesA...), imagesB...)...)

	res, err = Prune(ctx, rt, a, opts)
	if err != nil || len(res.Removed) != 1 || res.Removed[0].ID != imagesA[1] || res.Kept != 2 {
		t.Fatalf("prune of store A: %+v, %v; want only %s removed, 2 kept", res, err, imagesA[1])
	}
	checkSkipped(res, imagesB)
	if imageExists(rt, imagesA[1]) {
		t.Errorf("store A's unneeded image %s is still there", imagesA[1])
	}
	exist(append([]string{legacy, imagesA[0], imagesA[2]}, imagesB...)...)

	res, err = Prune(ctx, rt, other, opts)
	if err != nil || len(res.Removed) != 2 || res.Kept != 1 {
		t.Fatalf("prune of store B: %+v, %v; want 2 removed, 1 kept", res, err)
	}
	checkSkipped(res, []string{imagesA[0], imagesA[2]})
	for _, id := range imagesB[:2] {
		if imageExists(rt, id) {
			t.Errorf("store B's unneeded image %s is still there", id)
		}
	}
	exist(legacy, imagesA[0], imagesA[2], imagesB[2])
}

// TestPruneKeepsWhatTheRecordsNeed runs against the real engine: beyond the
// newest revisions, the store's records keep the revision an environment
// serves, the previous and target revisions of a deployment in progress,
// and the images of an execution that may still run (named in its variables
// or labelled with its commit); what only a finished execution named goes.
func TestPruneKeepsWhatTheRecordsNeed(t *testing.T) {
	ctx := context.Background()
	rt, suffix := pruneEngine(t)
	project := "prunerecords" + suffix
	t.Cleanup(func() { testenv.RemoveProject(project) })
	st := openStore(t)
	storeID, err := st.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	image := func(name string, more ...string) string {
		labels := map[string]string{docker.LabelProject: project, docker.LabelStore: storeID}
		for i := 0; i+1 < len(more); i += 2 {
			labels[more[i]] = more[i+1]
		}
		return labelledImage(t, rt, labels, name+"-"+suffix)
	}
	var revs []string
	start := time.Now().Add(-time.Hour).UTC()
	for i := range 6 {
		id := image(fmt.Sprintf("r%d", i))
		revs = append(revs, id)
		rev := store.Revision{ID: fmt.Sprintf("r%d", i), Project: project, Environment: "production", Source: "test",
			Services: map[string]store.ServiceRevision{"web": {Image: id, ConfigHash: "h"}}, CreatedAt: start.Add(time.Duration(i) * time.Minute)}
		if err := st.CreateRevision(ctx, rev); err != nil {
			t.Fatal(err)
		}
	}
	// production serves r0 (rolled back to it) while a deployment from r1 to r5 is in progress.
	if _, err := st.PutEnvState(ctx, store.EnvState{Project: project, Environment: "production", Revision: "r0", Status: "up"}, store.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDeployment(ctx, store.Deployment{ID: "d1", Project: project, Environment: "production", Revision: "r5",
		PreviousRevision: "r1", Strategy: "blue_green"}); err != nil {
		t.Fatal(err)
	}
	commit := "c0ffee" + suffix
	named, labelled, finished := image("x-named"), image("x-commit", docker.LabelCommit, commit), image("x-finished")
	for _, x := range []store.Execution{
		{ID: "x1", Status: store.ExecutionWaiting, Commit: commit, Variables: []byte(`{"CUTOVER_IMAGE_WEB":"` + named + `"}`)},
		{ID: "x2", Status: store.ExecutionSucceeded, Commit: "0ld" + suffix, Variables: []byte(`{"CUTOVER_IMAGE_WEB":"` + finished + `"}`)},
	} {
		x.Project, x.Pipeline, x.Trigger = project, "main", store.TriggerManual
		if err := st.CreateExecution(ctx, x); err != nil {
			t.Fatal(err)
		}
	}

	res, err := Prune(ctx, rt, st, PruneOptions{Project: project, Environments: []string{"production"}, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	var removed []string
	for _, im := range res.Removed {
		removed = append(removed, im.ID)
	}
	slices.Sort(removed)
	want := []string{revs[2], revs[3], finished}
	slices.Sort(want)
	if !slices.Equal(removed, want) || res.Kept != 6 || len(res.Skipped) != 0 {
		t.Fatalf("removed %v, kept %d, skipped %v; want removed %v (r2, r3, the finished execution's), kept 6", removed, res.Kept, res.Skipped, want)
	}
	for _, id := range []string{revs[0], revs[1], revs[4], revs[5], named, labelled} {
		if !imageExists(rt, id) {
			t.Errorf("needed image %s was removed", id)
		}
	}
}

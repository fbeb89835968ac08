package docker

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRemoveImageWaitsForABuildInProgress holds the engine's image lock as a
// build does and checks that a removal waits for it, that another process
// sees the lock (flock(1), as a second cutover would), and that a removal
// gives up with a clear error when its context ends first.
func TestRemoveImageWaitsForABuildInProgress(t *testing.T) {
	rt := newRuntime(t)
	img := buildTinyImage(t, rt)

	unlock, err := rt.lockImages(t.Context(), false) // a build in progress
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("flock", "-n", "-x", rt.imageLockPath(), "true").CombinedOutput(); err == nil {
		t.Fatalf("another process took the image lock exclusively while a build held it (%s)", out)
	}
	if out, err := exec.Command("flock", "-n", "-s", rt.imageLockPath(), "true").CombinedOutput(); err != nil {
		t.Fatalf("another process's build could not share the image lock: %v %s", err, out)
	}

	short, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	_, err = rt.RemoveImage(short, img.ID)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "waiting for builds in progress") || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("removal during a build with a 200ms deadline: %v; want it to give up waiting for the build", err)
	}

	done := make(chan error, 1)
	go func() { _, err := rt.RemoveImage(t.Context(), img.ID); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("the removal ended (%v) while a build held the lock", err)
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := rt.ImageID(t.Context(), img.ID); err != nil {
		t.Fatalf("the image went while a build held the lock: %v", err)
	}
	unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("removal after the build ended: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the removal did not go on once the build ended")
	}
	if _, err := rt.ImageID(t.Context(), img.ID); err == nil {
		t.Fatal("the image is still there after its removal")
	}
	if removed, err := rt.RemoveImage(t.Context(), img.ID); removed || err != nil {
		t.Fatalf("removing it again: removed=%v, %v; want nothing removed and no error", removed, err)
	}
}

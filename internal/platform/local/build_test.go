package local

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// TestBuildImagesChecksGivenImagesBeforeBuilding runs against the real
// engine: `cutover deploy ENV --image api=REF` with a REF the engine does not
// have fails naming the service, before the other service's build commands
// run or its image is built (it used to build everything first, then fail).
func TestBuildImagesChecksGivenImagesBeforeBuilding(t *testing.T) {
	ctx := context.Background()
	rt, suffix := pruneEngine(t)
	project := "buildgiven" + suffix
	t.Cleanup(func() { testenv.RemoveProject(project) })
	dir := t.TempDir()
	web := filepath.Join(dir, "web")
	if err := os.MkdirAll(web, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(web, "Dockerfile"), []byte("FROM scratch\nCOPY ran /ran\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ParseDir("cutover.yaml", dir, []byte("version: 1\nproject: "+project+
		"\nservices:\n  web:\n    build: { context: web, commands: [\"echo built > ran\"] }\n    port: 8080\n    route: { path_prefix: / }\n"+
		"  api:\n    build: { context: web }\n    port: 8081\n    route: { path_prefix: /api }\n"+
		"environments:\n  production:\n    listen: { port: 9080 }\n"))
	if err != nil {
		t.Fatal(err)
	}
	missing := "cutover-no-such-image-" + suffix + ":v1"
	_, err = BuildImages(ctx, rt, cfg, NewBuildID(time.Now()), "store-"+suffix, map[string]string{"api": missing}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "service api") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("BuildImages with a missing --image: err = %v, want one naming service api and %s", err, missing)
	}
	if _, serr := os.Stat(filepath.Join(web, "ran")); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("web's build command ran although api's image does not resolve (stat: %v)", serr)
	}
	images, err := rt.ProjectImages(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 0 {
		t.Errorf("images of %s after the refused build: %d, want none", project, len(images))
	}
}

// TestInterruptedBuildCommandSaysInterrupted: a build command killed because
// the command was interrupted (Ctrl-C cancels the context) is reported as
// interrupted, not as "failed (signal: killed) ... (fix the command in
// services.web.build.commands)", which blamed the user's command.
func TestInterruptedBuildCommandSaysInterrupted(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web", "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ParseDir("cutover.yaml", dir, []byte("version: 1\nproject: intr\nservices:\n  web:\n"+
		"    build: { context: web, commands: [\"touch started && exec sleep 30\"] }\n    port: 8080\n"+
		"environments:\n  production:\n    listen: { port: 9080 }\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			if _, err := os.Stat(filepath.Join(dir, "web", "started")); err == nil {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	err = RunBuildCommands(ctx, cfg, "web", "b1", func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "fix the command") {
		t.Fatalf("build command interrupted: err = %v, want it said interrupted (context canceled), not blamed on the command", err)
	}
}

package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// A schedule queues its branch's head as a scheduled execution at its
// times; one firing is queued once, even when asked twice (a restart in the
// same minute, two daemons on one store).
func TestScheduleRunsTheBranchHeadOncePerFiring(t *testing.T) {
	d := newDaemon(t)
	y := strings.Replace(fmt.Sprintf(commandProject, "sch-"+strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")),
		"pipeline:\n", "pipeline:\n  schedule:\n    - { cron: \"@every 1s\", branch: develop }\n", 1)
	testenv.Replace(t, filepath.Join(d.repo, "cutover.yaml"), fmt.Sprintf(commandProject, d.cfg.Project), y)
	testenv.Git(t, d.repo, "commit", "-qam", "nightly")
	testenv.Git(t, d.repo, "branch", "-f", "develop", "main")
	cfg, err := config.Load(filepath.Join(d.repo, "cutover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d.cfg = cfg
	head := testenv.Git(t, d.repo, "rev-parse", "develop")
	s := d.server()
	stop, _ := start(t, s)
	var x store.Execution
	waitFor(t, "a scheduled execution to finish", func() bool {
		var ok bool
		x, ok = d.find(func(x store.Execution) bool {
			return x.Trigger == pipeline.TriggerSchedule && !store.ExecutionActive(x.Status)
		})
		return ok
	})
	stop()
	if x.Status != store.ExecutionSucceeded || x.Branch != "develop" || x.Commit != head || stageStatus(t, x.Stages, "staging") != pipeline.StatusSucceeded {
		t.Fatalf("scheduled execution %s of %s at %s (want develop's head %s, through staging): %s", x.Status, x.Branch, x.Commit, head, x.Stages)
	}

	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	entry := cfg.EffectivePipeline().Schedule[0]
	if _, err := s.fire(context.Background(), 0, entry, at); err != nil {
		t.Fatal(err)
	}
	if _, err := d.server().fire(context.Background(), 0, entry, at); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("the same firing queued twice: %v", err)
	}
}

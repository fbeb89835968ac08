package docker

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// trustedImage is what a trusted run leaves on the engine: an image cutover
// built and labelled (tag cutover/PROJECT-SERVICE:latest), whose first stage
// fetched a private dependency (here: copied a secret), and that stage's
// image, a build step without cutover's labels, which the classic builder
// keeps as its cache and which only its ID names.
type trustedImage struct {
	tag, id string // the final image
	stepID  string // the first stage's image (sha256:…)
	secret  string // in both
}

func buildTrustedImage(ctx context.Context, t *testing.T, rt *Runtime) trustedImage {
	t.Helper()
	project := "t" + randomHex(4)
	secret := "private-dependency-" + randomHex(8)
	var out strings.Builder
	img, err := rt.Build(ctx, BuildRequest{
		ContextDir: writeContext(t, map[string]string{
			"Dockerfile": "FROM scratch AS deps\nCOPY secret /secret\nFROM scratch\nCOPY --from=deps /secret /secret\n",
			"secret":     secret + "\n",
		}),
		Tags:   []string{"cutover/" + project + "-svc:latest"},
		Output: &out,
		Labels: map[string]string{LabelProject: project, LabelService: "svc", LabelStore: "store-" + randomHex(4),
			LabelCommit: randomHex(20), "dev.cutover.test": "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Step 2/5 : COPY secret /secret
	//  ---> 0123456789ab
	m := regexp.MustCompile(`Step 2/\d+ : COPY secret /secret\n(?: ---> Using cache\n)? ---> ([0-9a-f]{12})`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no ID of the first stage's step in the build output:\n%s", out.String())
	}
	step, err := rt.client.ImageInspect(ctx, m[1])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rt.RemoveImage(ctx, img.ID)
		rt.RemoveImage(ctx, step.ID)
	})
	return trustedImage{tag: img.Tags[0], id: img.ID, stepID: step.ID, secret: secret}
}

// removeOnly removes the image id and not its parents (RemoveImage would
// remove the build step an untrusted image was built FROM), holding the
// engine's image lock as RemoveImage does: a step made FROM scratch has no
// parent, and the classic builder, looking for a cached step FROM scratch in
// a build of another test package, fails with "unable to find image" when
// one it listed is removed before it reads it (a pipeline test failed so).
func removeOnly(ctx context.Context, rt *Runtime, id string) {
	if unlock, err := rt.lockImages(ctx, true); err == nil {
		defer unlock()
	}
	rt.client.ImageRemove(ctx, id, client.ImageRemoveOptions{Force: true})
}

// removeBuilt removes the images a build made, its steps' (their IDs in its
// output, but for a FROM's: the base) included, the last first, and not
// their parents.
func removeBuilt(ctx context.Context, rt *Runtime, output string) {
	var ids []string
	from := false
	for _, line := range strings.Split(output, "\n") {
		if step, ok := strings.CutPrefix(line, "Step "); ok {
			_, instruction, _ := strings.Cut(step, " : ")
			from = strings.HasPrefix(strings.ToUpper(instruction), "FROM ")
		} else if id, ok := strings.CutPrefix(strings.TrimSpace(line), "---> "); ok && !from && len(id) == 12 {
			ids = append(ids, id)
		}
	}
	for i := len(ids) - 1; i >= 0; i-- {
		removeOnly(ctx, rt, ids[i])
	}
}

// holds reports whether the image id holds the text (in a file of a layer).
func holds(ctx context.Context, t *testing.T, rt *Runtime, id, text string) bool {
	t.Helper()
	res, err := rt.client.ImageSave(ctx, []string{id})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	saved, err := io.ReadAll(res)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(saved, []byte(text))
}

// On the real engine: a pull request's Dockerfile names an image a trusted
// run built (by its tag, through a variable, by the ID of one of its build
// steps, in COPY --from, in an ONBUILD trigger of its own or of a base
// image, in a heredoc an engine without heredocs reads as instructions). The
// classic builder takes any of them, and the untrusted image held the
// trusted one's files, for the pull request's later steps to show: the
// check read only the bases' ONBUILD triggers.
func TestAttackUntrustedBuildReadsATrustedImage(t *testing.T) {
	rt := newRuntime(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	tr := buildTrustedImage(ctx, t, rt)
	short := strings.TrimPrefix(tr.stepID, "sha256:")[:12]
	base := onbuildImage(ctx, t, rt, "FROM scratch\nONBUILD COPY --from="+tr.tag+" /secret /stolen\n")
	// A test runner an integration run built for its compose stack.
	it := "cutover-it/t" + randomHex(4) + "-tests:latest"
	runner, err := rt.Build(ctx, BuildRequest{ContextDir: writeContext(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY Dockerfile /runner\n"}), Tags: []string{it},
		Labels: map[string]string{"dev.cutover.integration": "cutover-it-x", "dev.cutover.test": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.RemoveImage(context.Background(), runner.ID) })

	for _, c := range []struct {
		name, dockerfile, want string
	}{
		{"FROM its tag", "FROM " + tr.tag + "\n",
			"backend/Dockerfile line 1: FROM " + tr.tag + ": the image was built by cutover (project "},
		{"FROM an argument", "ARG BASE=" + tr.tag + "\nFROM $BASE\n",
			"backend/Dockerfile line 2: FROM " + tr.tag + ": the image was built by cutover (project "},
		{"COPY --from its tag", "FROM scratch\nCOPY --from=" + tr.tag + " /secret /stolen\n",
			"backend/Dockerfile line 2: COPY --from=" + tr.tag + ": the image was built by cutover (project "},
		{"FROM a short ID of a build step", "FROM " + short + "\n",
			"backend/Dockerfile line 1: FROM " + short + ": names an image by its ID"},
		{"COPY --from the ID of a build step", "FROM scratch\nCOPY --from=" + tr.stepID + " /secret /stolen\n",
			"backend/Dockerfile line 2: COPY --from=" + tr.stepID + ": names an image by its ID"},
		{"an ONBUILD trigger of its own", "FROM scratch AS a\nONBUILD COPY --from=" + tr.tag + " /secret /stolen\nFROM a\n",
			"backend/Dockerfile line 2: ONBUILD COPY --from=" + tr.tag + ": the image was built by cutover (project "},
		{"a base image's ONBUILD trigger", "FROM " + base + "\n",
			"backend/Dockerfile line 1: FROM " + base + ": its ONBUILD trigger COPY --from=" + tr.tag + ": the image was built by cutover (project "},
		{"FROM an integration run's image", "FROM " + it + "\n",
			"backend/Dockerfile line 1: FROM " + it + ": the image was built by cutover (dev.cutover.integration=cutover-it-x)"},
		{"a heredoc's line", "FROM scratch\nCOPY <<CMD /x\nCOPY --from=" + tr.tag + " /secret /stolen\nCMD\n",
			"backend/Dockerfile line 3: COPY --from=" + tr.tag + ": the image was built by cutover (project "},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := writeContext(t, map[string]string{
				"Dockerfile": c.dockerfile,
				"<<CMD":      "a file named as the heredoc's start, for an engine that reads no heredocs\n",
			})
			var out strings.Builder
			img, err := rt.Build(ctx, BuildRequest{ContextDir: dir, NoNetwork: true, Output: &out, Labels: map[string]string{"dev.cutover.test": "true"}})
			if err == nil {
				leaked := holds(ctx, t, rt, img.ID, tr.secret) // (not the test runner's: it holds none)
				removeOnly(ctx, rt, img.ID)
				t.Errorf("the untrusted build passed the check and built (its image holds the trusted image's secret: %v)\n%s", leaked, out.String())
			} else if !strings.Contains(err.Error(), c.want) {
				t.Errorf("untrusted Build: %v\nwant an error with %q", err, c.want)
			} else {
				t.Log(err)
			}
		})
	}
}

// A variable in COPY --from: an engine that expands it reads whatever a build
// argument says; the check cannot know which image that is.
func TestAttackUntrustedCopyFromAVariable(t *testing.T) {
	rt := newRuntime(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	tr := buildTrustedImage(ctx, t, rt)
	dir := writeContext(t, map[string]string{"Dockerfile": "ARG SRC=" + tr.tag + "\nFROM scratch\nCOPY --from=$SRC /secret /stolen\n"})
	var out strings.Builder
	img, err := rt.Build(ctx, BuildRequest{ContextDir: dir, NoNetwork: true, Output: &out, BuildArgs: map[string]string{"SRC": tr.tag},
		Labels: map[string]string{"dev.cutover.test": "true"}})
	if err == nil {
		leaked := holds(ctx, t, rt, img.ID, tr.secret)
		removeOnly(ctx, rt, img.ID)
		t.Errorf("the untrusted build built (its image holds the trusted image's secret: %v)\n%s", leaked, out.String())
	}
	want := "backend/Dockerfile line 3: COPY --from=$SRC names its source with a variable"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("untrusted Build: %v\nwant an error with %q", err, want)
	}
}

// On the real engine: the check resolved the base image's name, then the
// engine resolved it again, as late as the stage that names it starts. Here
// a name is moved (as a trusted build's tags move, or a removal and the
// builder's own pull) once the engine has started: the engine built FROM an
// image that the check never saw, a trusted one.
func TestAttackUntrustedBaseMovedAfterTheCheck(t *testing.T) {
	rt := newRuntime(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	tr := buildTrustedImage(ctx, t, rt)
	name := onbuildImage(ctx, t, rt, "FROM scratch\nCOPY Dockerfile /benign\n")
	benign, err := rt.client.ImageInspect(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.client.ImageTag(context.Background(), client.ImageTagOptions{Source: benign.ID, Target: name})

	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM scratch AS slow\nCOPY big /big1\nCOPY big /big2\nCOPY big /big3\nFROM " + name + "\n",
		"big":        strings.Repeat(randomHex(512), 48<<10), // 48 MiB: some seconds of copying
	})
	moved := false
	var output strings.Builder
	out := lineWriter(func(line string) {
		output.WriteString(line + "\n")
		if !moved && strings.HasPrefix(line, "Step 1/") {
			moved = true
			if _, err := rt.client.ImageTag(ctx, client.ImageTagOptions{Source: tr.id, Target: name}); err != nil {
				t.Errorf("moving %s: %v", name, err)
			}
		}
	})
	img, err := rt.Build(ctx, BuildRequest{ContextDir: dir, NoNetwork: true, Output: out, Labels: map[string]string{"dev.cutover.test": "true"}})
	if err != nil {
		t.Fatalf("untrusted Build: %v", err)
	}
	defer removeBuilt(context.Background(), rt, output.String()) // the steps of the slow stage: 144 MiB
	if !moved {
		t.Fatal("the build showed no step: the name was never moved")
	}
	got, err := rt.client.ImageInspect(ctx, img.ID)
	if err != nil {
		t.Fatal(err)
	}
	trusted, _ := rt.client.ImageInspect(ctx, tr.id)
	switch {
	case got.RootFS.Layers[0] == trusted.RootFS.Layers[0]:
		t.Errorf("the untrusted build was checked FROM %s (%.19s) and built FROM the trusted image it was moved to (%.19s)", name, benign.ID, tr.id)
	case got.RootFS.Layers[0] != benign.RootFS.Layers[0]:
		t.Errorf("the untrusted build was built FROM neither image: layers %v", got.RootFS.Layers)
	}
}

// lineWriter calls f with each line written to it.
type lineWriter func(string)

func (f lineWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		f(line)
	}
	return len(p), nil
}

// What an untrusted build may read builds on the real engine: an image
// cutover did not build, by its name (the engine is given its ID), its own
// stages by name (in any case) or index, and an image cutover built that is
// among its own (its run built it).
func TestUntrustedBuildReadsTheImagesItMay(t *testing.T) {
	rt := newRuntime(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	tr := buildTrustedImage(ctx, t, rt)
	benign := onbuildImage(ctx, t, rt, "FROM scratch\nCOPY Dockerfile /benign\n")
	benignID, err := rt.ImageID(ctx, benign)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, dockerfile string
		own              []string
	}{
		{"images cutover did not build, and stages", "FROM " + benign + " AS one\nCOPY --from=" + benign + " /benign /again\nFROM scratch\nCOPY --from=ONE /again /a\nCOPY --from=0 /benign /b\n", nil},
		{"its own image", "FROM " + tr.tag + "\nFROM scratch\nCOPY --from=" + tr.tag + " /secret /s\n", []string{tr.id}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			_, err := rt.Build(ctx, BuildRequest{ContextDir: writeContext(t, map[string]string{"Dockerfile": c.dockerfile}), NoNetwork: true, OwnImages: c.own,
				Output: &out, Labels: map[string]string{"dev.cutover.test": "true"}})
			if err != nil {
				t.Fatalf("untrusted Build: %v\n%s", err, out.String())
			}
			removeBuilt(ctx, rt, out.String())
			if c.own == nil && !strings.Contains(out.String(), "Step 1/6 : FROM "+benignID+" AS one") {
				t.Errorf("the engine was not given the base's ID:\n%s", out.String())
			}
		})
	}
}

package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	archive "github.com/moby/go-archive"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/cutoverdev/cutover/internal/short"
)

// BuildRequest describes one image build.
type BuildRequest struct {
	ContextDir string            // build context directory
	Dockerfile string            // relative to ContextDir; default "Dockerfile"
	Tags       []string          // e.g. cutover/shop-backend:BUILDID
	BuildArgs  map[string]string // ARG values
	Labels     map[string]string // image labels
	Output     io.Writer         // optional: the build's progress lines
	// NoNetwork runs the Dockerfile's RUN steps without any network
	// (untrusted code: a pull request's Dockerfile).
	NoNetwork bool
	// OwnImages are the IDs of images cutover built that an untrusted build
	// may read all the same (FROM, COPY --from): those its own run built.
	OwnImages []string
}

// Image is a built or resolved image.
type Image struct {
	ID   string // sha256:... (digest of the image config)
	Tags []string
}

// Build sends the context directory (honouring .dockerignore) to the engine's
// classic builder, which needs no BuildKit session and exists on every engine,
// and returns the built image's ID.
func (r *Runtime) Build(ctx context.Context, req BuildRequest) (Image, error) {
	name := filepath.Base(filepath.Clean(req.ContextDir))
	dockerfile := req.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	shown := filepath.Join(name, dockerfile) // how the user knows the file: backend/Dockerfile
	if filepath.IsAbs(dockerfile) {
		rel, err := filepath.Rel(req.ContextDir, dockerfile)
		if err != nil {
			return Image{}, fmt.Errorf("build %s: Dockerfile %s is not inside the build context %s (move it into the context)", name, dockerfile, req.ContextDir)
		}
		dockerfile, shown = rel, dockerfile
	}
	dockerfile = filepath.ToSlash(filepath.Clean(dockerfile))
	if dockerfile == ".." || strings.HasPrefix(dockerfile, "../") {
		return Image{}, fmt.Errorf("build %s: Dockerfile %s is outside the build context %s (move it into the context)", name, shown, req.ContextDir)
	}
	if st, err := os.Stat(req.ContextDir); err != nil || !st.IsDir() {
		return Image{}, fmt.Errorf("build %s: build context directory %s not found (check the build context path)", name, req.ContextDir)
	}
	if st, err := os.Stat(filepath.Join(req.ContextDir, dockerfile)); err != nil || st.IsDir() {
		return Image{}, fmt.Errorf("build %s: Dockerfile %s not found (create it, or set the right dockerfile path for the service)", name, shown)
	}

	// Taken before an untrusted build's check, so that no removal comes
	// between the images it checked and the build (which reads them by ID).
	unlock, err := r.lockImages(ctx, false)
	if err != nil {
		return Image{}, fmt.Errorf("build %s (%s): %w", name, shown, err)
	}
	defer unlock()
	var canonical []byte
	if req.NoNetwork {
		// The builder fetches an ADD of a URL itself, on the engine's network,
		// whatever the RUN steps' network is, and reads any image on the
		// engine it is given: refuse those, and build what was checked
		// (untrusted.go).
		if canonical, err = r.checkUntrustedBuild(ctx, req.ContextDir, name, dockerfile, shown, req.BuildArgs, req.OwnImages); err != nil {
			return Image{}, fmt.Errorf("build %s: %w", name, err)
		}
	}

	excludes, err := readDockerignore(req.ContextDir)
	if err != nil {
		return Image{}, fmt.Errorf("build %s: %w", name, err)
	}
	if len(excludes) > 0 {
		// The builder reads these from the context, so they are sent even when
		// .dockerignore excludes them (as the docker CLI does).
		excludes = append(excludes, "!"+dockerfile, "!.dockerignore")
	}
	tar, err := archive.TarWithOptions(req.ContextDir, &archive.TarOptions{
		ExcludePatterns: excludes,
		ChownOpts:       &archive.ChownOpts{UID: 0, GID: 0},
	})
	if err != nil {
		return Image{}, fmt.Errorf("build %s: reading build context %s: %w", name, req.ContextDir, err)
	}
	defer tar.Close()
	var buildContext io.Reader = tar
	if canonical != nil {
		withCanonical := withFile(tar, untrustedDockerfile, canonical)
		defer withCanonical.Close()
		buildContext, dockerfile = withCanonical, untrustedDockerfile
	}

	args := make(map[string]*string, len(req.BuildArgs))
	for k, v := range req.BuildArgs {
		args[k] = &v
	}
	network := ""
	if req.NoNetwork {
		network = "none" // the RUN steps'; ADD was checked above
	}
	res, err := r.client.ImageBuild(ctx, buildContext, client.ImageBuildOptions{
		NetworkMode: network,
		Version:     build.BuilderV1,
		Dockerfile:  dockerfile,
		Tags:        req.Tags,
		BuildArgs:   args,
		Labels:      req.Labels,
		Remove:      true,
		ForceRemove: true,
	})
	if err != nil {
		return Image{}, fmt.Errorf("build %s (%s): %s", name, shown, engineMessage(err))
	}
	defer res.Body.Close()

	id, err := readBuildStream(res.Body, req.Output)
	if err != nil {
		if ctx.Err() != nil {
			return Image{}, fmt.Errorf("build %s (%s): %w", name, shown, ctx.Err())
		}
		return Image{}, fmt.Errorf("build %s (%s): %w", name, shown, err)
	}
	if id == "" && len(req.Tags) > 0 {
		// Engines that do not send the ID as aux data still tag the image.
		id, err = r.ImageID(ctx, req.Tags[0])
		if err != nil {
			return Image{}, fmt.Errorf("build %s (%s): %w", name, shown, err)
		}
	}
	if id == "" {
		return Image{}, fmt.Errorf("build %s (%s): the engine did not report the image ID", name, shown)
	}
	r.log.Debug("built image", "context", req.ContextDir, "id", id, "tags", req.Tags)
	return Image{ID: id, Tags: req.Tags}, nil
}

func readDockerignore(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	return patterns, nil
}

// BuildError is a failed build step: the step, the builder's message and the
// output lines before it.
type BuildError struct {
	Step    string   // e.g. "step 3/4 COPY bin/backend /backend"; empty if the build failed before any step
	Message string   // the builder's error
	Output  []string // the last lines of output of the failing step
}

func (e *BuildError) Error() string {
	// The step and the message may quote the Dockerfile's line, which an
	// untrusted build writes: no terminal escapes in them.
	s := short.Printable(e.Message)
	if e.Step != "" {
		s = short.Printable(e.Step) + ": " + s
	}
	if len(e.Output) > 0 {
		// On the same line: an execution's summary keeps its error's first
		// line only, and the cause is in these lines.
		s += " (last output: " + strings.Join(e.Output, " | ") + ")"
	}
	return s
}

// readBuildStream decodes the builder's JSON message stream, copies the
// progress text to out, and returns the image ID the builder reports.
func readBuildStream(body io.Reader, out io.Writer) (string, error) {
	var (
		id     string
		step   string
		output short.Tail // of the step: what a failure message quotes
	)
	dec := json.NewDecoder(body)
	for {
		var msg jsonstream.Message
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return id, nil
			}
			return "", fmt.Errorf("reading the build output: %w", err)
		}
		if msg.Error != nil {
			return "", &BuildError{Step: step, Message: strings.TrimSpace(msg.Error.Message), Output: output.Lines()}
		}
		if msg.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(*msg.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
		text := msg.Stream
		if text == "" && msg.Status != "" {
			text = msg.Status + "\n"
		}
		if text == "" {
			continue
		}
		if out != nil {
			io.WriteString(out, text)
		}
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			switch {
			case line == "" || strings.HasPrefix(line, "--->") || strings.HasPrefix(line, "Removing intermediate container"):
			case strings.HasPrefix(line, "Step "):
				// "Step 3/4 : COPY a b" -> "step 3/4 COPY a b"
				step = "step " + strings.Replace(strings.TrimPrefix(line, "Step "), " : ", " ", 1)
				output.Reset()
			default:
				output.Add(line)
			}
		}
	}
}

// ImageID resolves a tag or ID to the local image's ID (sha256:...).
func (r *Runtime) ImageID(ctx context.Context, ref string) (string, error) {
	if ref == "" {
		return "", errors.New("no image given (set the service's image or build)")
	}
	res, err := r.client.ImageInspect(ctx, ref)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("image %s not found locally (build it, or check the name)", ref)
		}
		return "", fmt.Errorf("image %s: %s", ref, engineMessage(err))
	}
	return res.ID, nil
}

package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"

	cerrdefs "github.com/containerd/errdefs"
	archive "github.com/moby/go-archive"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/moby/patternmatcher/ignorefile"
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
}

// Image is a built or resolved image.
type Image struct {
	ID   string // sha256:... (digest of the image config)
	Tags []string
}

// outputLines is how many lines of build output a failure message quotes.
const outputLines = 3

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

	if req.NoNetwork {
		// The builder fetches an ADD of a URL itself, on the engine's network,
		// whatever the RUN steps' network is: refuse it.
		if err := checkUntrustedDockerfile(req.ContextDir, name, dockerfile, shown); err != nil {
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

	args := make(map[string]*string, len(req.BuildArgs))
	for k, v := range req.BuildArgs {
		args[k] = &v
	}
	network := ""
	if req.NoNetwork {
		network = "none" // the RUN steps'; ADD was checked above
	}
	unlock, err := r.lockImages(ctx, false)
	if err != nil {
		return Image{}, fmt.Errorf("build %s (%s): %w", name, shown, err)
	}
	defer unlock()
	res, err := r.client.ImageBuild(ctx, tar, client.ImageBuildOptions{
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
	s := e.Message
	if e.Step != "" {
		s = e.Step + ": " + s
	}
	if len(e.Output) > 0 {
		s += "\n  last output: " + strings.Join(e.Output, " | ")
	}
	return s
}

// readBuildStream decodes the builder's JSON message stream, copies the
// progress text to out, and returns the image ID the builder reports.
func readBuildStream(body io.Reader, out io.Writer) (string, error) {
	var (
		id     string
		step   string
		output []string
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
			return "", &BuildError{Step: step, Message: strings.TrimSpace(msg.Error.Message), Output: output}
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
				output = nil
			default:
				output = append(output, line)
				if len(output) > outputLines {
					output = output[len(output)-outputLines:]
				}
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

// checkUntrustedDockerfile refuses the Dockerfile of an untrusted build
// (dockerfile: relative to contextDir, cleaned, slash separated; shown: how
// the user knows it) if it may ADD from the network.
//
// It reads the file the engine will build. The engine finds the Dockerfile
// inside the context it receives, a link followed within that context (its
// .. stops at the context's root, an absolute target starts there), while
// the host would follow it anywhere: app/Dockerfile -> ../real.df is the
// workspace's real.df on the host and app/real.df to the engine. So the
// file is read through an os.Root on the context, which follows a link
// inside the context as the engine does and refuses one that leads out of
// it. And when the default Dockerfile is missing from what the engine
// receives (a link whose target .dockerignore leaves out), the engine
// builds "dockerfile" instead, so that one is checked too when it exists.
func checkUntrustedDockerfile(contextDir, name, dockerfile, shown string) error {
	root, err := os.OpenRoot(contextDir)
	if err != nil {
		return fmt.Errorf("build context %s: %w", contextDir, err)
	}
	defer root.Close()
	files := []string{dockerfile}
	if dockerfile == "Dockerfile" {
		files = append(files, "dockerfile")
	}
	for i, file := range files {
		if i > 0 {
			shown = filepath.Join(name, file)
			if _, err := os.Lstat(filepath.Join(contextDir, file)); err != nil {
				continue // no such file: nothing the engine could fall back to
			}
		}
		df, err := root.ReadFile(file)
		if err != nil {
			if link, target, ok := firstLink(contextDir, file); ok && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, os.ErrPermission) {
				if link == file {
					return fmt.Errorf("Dockerfile %s is a link leading out of the build context (%s): an untrusted build takes a Dockerfile inside its context", shown, target)
				}
				return fmt.Errorf("Dockerfile %s is reached through %s, a link leading out of the build context (%s): an untrusted build takes a Dockerfile inside its context", shown, filepath.Join(name, link), target)
			}
			return fmt.Errorf("Dockerfile %s: reading it inside the build context: %w", shown, err)
		}
		if line, src, reason := remoteAdd(df); line > 0 {
			return fmt.Errorf("%s line %d: ADD %s %s", shown, line, src, reason)
		}
	}
	return nil
}

// firstLink finds the first symbolic link on the path file (slash separated,
// relative to dir): the link, relative to dir, and what it points to.
func firstLink(dir, file string) (link, target string, ok bool) {
	parts := strings.Split(file, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		st, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			return "", "", false
		}
		if st.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(filepath.Join(dir, filepath.FromSlash(p)))
			return p, target, err == nil
		}
	}
	return "", "", false
}

// remoteAdd finds the first ADD instruction of a Dockerfile (ONBUILD ADD
// included) that may fetch from the network, and returns its line, the
// source and why (line 0 when there is none): a source that is a URL or a
// git repository, or that holds a variable ($U, ${U}), which a build
// argument may set to a URL. Comments, empty lines, line continuations and
// JSON form are followed as the builder reads them.
//
// The builder's escape character is \ unless a `# escape=` parser directive
// at the top of the file makes it a backtick. Rather than trust one reading
// of the directives (their order, a byte order mark, case and spaces), the
// file is read with each of the two: an ADD hidden from one reading is an
// instruction of its own in the other.
func remoteAdd(dockerfile []byte) (line int, src, reason string) {
	for _, escape := range []string{"\\", "`"} {
		if l, s, r := remoteAddEscaped(dockerfile, escape); l > 0 && (line == 0 || l < line) {
			line, src, reason = l, s, r
		}
	}
	return line, src, reason
}

const (
	reasonNetwork  = "fetches from the network, which this build may not use (copy the file into the repository, or fetch it in a trusted build)"
	reasonVariable = "names its source with a variable, which a build argument may set to a URL fetched from the network (name the file itself in the Dockerfile)"
)

// unquoted deletes what the builder may drop from an ADD word, and JSON's punctuation.
var unquoted = strings.NewReplacer(`\`, "", "`", "", `"`, "", "'", "", "[", "", "]", "", ",", "")

func butLast(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s[:len(s)-1]
}

// continuation is the builder's line continuation for each escape character:
// the escape, not itself escaped, then spaces or tabs to the end of the line
// (moby/buildkit frontend/dockerfile/parser, setEscapeToken).
var continuation = map[string]*regexp.Regexp{
	"\\": regexp.MustCompile(`([^\\])\\[ \t]*$|^\\[ \t]*$`),
	"`":  regexp.MustCompile("([^`])`[ \t]*$|^`[ \t]*$"),
}

// instruction is one instruction of a Dockerfile: its continuation lines
// joined, and the line it starts on.
type instruction struct {
	line int
	text string
}

// instructions splits a Dockerfile into instructions as the builder's parser
// does (moby/buildkit frontend/dockerfile/parser, Parse): an instruction's
// first line loses its leading whitespace; a line ending in the escape
// (then spaces or tabs) goes on with the next line, appended as it is, with
// nothing in between and its leading whitespace kept, only the escape and
// what follows it dropped; comment lines and empty lines inside an
// instruction are skipped. A comment never continues. So "AD\" then "D x"
// is ADD x, and "http:\" then "//host" is http://host.
func instructions(dockerfile []byte, escape string) []instruction {
	cont := continuation[escape]
	trimCont := func(l string) (string, bool) {
		if cont.MatchString(l) {
			return cont.ReplaceAllString(l, "$1"), false
		}
		return l, true
	}
	isComment := func(l string) bool { return strings.HasPrefix(strings.TrimLeftFunc(l, unicode.IsSpace), "#") }
	trimNewline := func(l string) string { return strings.TrimRight(l, "\r\n") }

	text := strings.TrimPrefix(string(dockerfile), "\ufeff")
	lines := strings.Split(text, "\n")
	var out []instruction
	for i := 0; i < len(lines); i++ {
		start := i + 1
		first := strings.TrimLeftFunc(trimNewline(lines[i]), unicode.IsSpace)
		if isComment(first) {
			first = "" // a comment (or a parser directive) continues nothing
		}
		first, end := trimCont(first)
		if end && first == "" {
			continue
		}
		var b strings.Builder
		b.WriteString(first)
		for !end && i+1 < len(lines) {
			i++
			next := trimNewline(lines[i])
			if isComment(next) || strings.TrimLeftFunc(next, unicode.IsSpace) == "" {
				continue // the builder skips them inside an instruction
			}
			next, end = trimCont(next)
			b.WriteString(next)
		}
		out = append(out, instruction{start, b.String()})
	}
	return out
}

func remoteAddEscaped(dockerfile []byte, escape string) (int, string, string) {
	for _, in := range instructions(dockerfile, escape) {
		start, inst := in.line, in.text
		fields := strings.Fields(inst)
		if len(fields) > 1 && strings.EqualFold(fields[0], "ONBUILD") {
			fields = fields[1:] // runs in a build FROM this image, which may be the next one
		}
		if len(fields) < 2 || !strings.EqualFold(fields[0], "ADD") {
			continue
		}
		args := fields[1:]
		srcs := args // without the flags
		for len(srcs) > 0 && strings.HasPrefix(srcs[0], "--") && srcs[0] != "--" {
			srcs = srcs[1:] // --chown=, --chmod=, --checksum=, --link...
		}
		var list []string // JSON form, as the builder decodes it
		if rest := strings.Join(srcs, " "); strings.HasPrefix(rest, "[") && json.Unmarshal([]byte(rest), &list) != nil {
			list = nil
		}
		// The builder drops quotes and escapes from a word: h"ttp":\//x is a URL.
		for _, f := range slices.Concat(args, list) {
			if w := strings.ToLower(unquoted.Replace(f)); strings.Contains(w, "://") || strings.HasPrefix(w, "git@") {
				return start, strings.Trim(f, `[]",`), reasonNetwork
			}
		}
		// A variable is refused in a source, not in the destination or a flag.
		for _, f := range slices.Concat(butLast(srcs), butLast(list)) {
			if strings.Contains(f, "$") {
				return start, strings.Trim(f, `[]",`), reasonVariable
			}
		}
	}
	return 0, "", ""
}

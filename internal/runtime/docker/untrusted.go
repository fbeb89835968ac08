package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/moby/client"
)

// An untrusted build (a pull request's Dockerfile) runs its RUN steps
// without a network, but the classic builder fetches an ADD of a URL
// itself, on the engine's network, and runs the ONBUILD triggers of the
// images it builds FROM. So before such a build, its Dockerfile and the
// triggers of its base images are read as the builder reads them, with the
// builder's own parser (moby/buildkit's, which the engine's classic builder
// uses), and any ADD that may fetch from the network refuses the build.

// checkUntrustedBuild refuses an untrusted build (dockerfile: relative to
// contextDir, cleaned, slash separated; shown: how the user knows it) whose
// Dockerfile, or a base image's ONBUILD trigger, may ADD from the network.
func (r *Runtime) checkUntrustedBuild(ctx context.Context, contextDir, name, dockerfile, shown string, args map[string]string) error {
	files, err := untrustedDockerfiles(contextDir, name, dockerfile, shown)
	if err != nil {
		return err
	}
	for _, f := range files {
		p, err := parseDockerfile(f.text)
		if err != nil {
			return fmt.Errorf("%s: %w", f.shown, err)
		}
		if add, err := remoteAddIn(p); err != nil {
			return fmt.Errorf("%s: %w", f.shown, err)
		} else if add.line > 0 {
			return fmt.Errorf("%s line %d: ADD %s %s", f.shown, add.line, add.src, add.reason)
		}
		bases, err := baseImages(p, args)
		if err != nil {
			return fmt.Errorf("%s: %w", f.shown, err)
		}
		for _, base := range bases {
			if err := r.checkBaseTriggers(ctx, base); err != nil {
				return fmt.Errorf("%s line %d: FROM %s: %w", f.shown, base.line, base.ref, err)
			}
		}
	}
	return nil
}

type dockerfileText struct {
	shown string
	text  []byte
}

// untrustedDockerfiles reads the file the engine will build.
//
// The engine finds the Dockerfile inside the context it receives, a link
// followed within that context (its .. stops at the context's root, an
// absolute target starts there), while the host would follow it anywhere:
// app/Dockerfile -> ../real.df is the workspace's real.df on the host and
// app/real.df to the engine. So the file is read through an os.Root on the
// context, which follows a link inside the context as the engine does and
// refuses one that leads out of it. And when the default Dockerfile is
// missing from what the engine receives (a link whose target .dockerignore
// leaves out), the engine builds "dockerfile" instead, so that one is read
// too when it exists.
func untrustedDockerfiles(contextDir, name, dockerfile, shown string) ([]dockerfileText, error) {
	root, err := os.OpenRoot(contextDir)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", contextDir, err)
	}
	defer root.Close()
	files := []string{dockerfile}
	if dockerfile == "Dockerfile" {
		files = append(files, "dockerfile")
	}
	var out []dockerfileText
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
					return nil, fmt.Errorf("Dockerfile %s is a link leading out of the build context (%s): an untrusted build takes a Dockerfile inside its context", shown, target)
				}
				return nil, fmt.Errorf("Dockerfile %s is reached through %s, a link leading out of the build context (%s): an untrusted build takes a Dockerfile inside its context", shown, filepath.Join(name, link), target)
			}
			return nil, fmt.Errorf("Dockerfile %s: reading it inside the build context: %w", shown, err)
		}
		out = append(out, dockerfileText{shown, df})
	}
	return out, nil
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

// parsed is a Dockerfile as the builder reads it: its text and syntax
// tree, its instructions grouped in stages, the arguments declared before
// the first FROM, and the escape character its parser directive chose.
type parsed struct {
	text     []byte
	ast      *parser.Node
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	escape   rune
}

// parseDockerfile reads a Dockerfile with the builder's parser. What it
// cannot read, the builder cannot build either; the error names the line.
func parseDockerfile(df []byte) (parsed, error) {
	if !utf8.Valid(df) {
		line := 1 + bytes.Count(df[:firstInvalid(df)], []byte("\n"))
		return parsed{}, fmt.Errorf("line %d is not UTF-8 text (save the file as UTF-8)", line)
	}
	res, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		return parsed{}, fmt.Errorf("the builder cannot read it: %v", err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return parsed{}, fmt.Errorf("the builder cannot read it: %v", err)
	}
	return parsed{df, res.AST, stages, metaArgs, res.EscapeToken}, nil
}

// firstInvalid is the offset of the first byte of df that is not UTF-8.
func firstInvalid(df []byte) int {
	for i := 0; i < len(df); {
		r, n := utf8.DecodeRune(df[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(df)
}

const (
	reasonNetwork  = "fetches from the network, which this build may not use (copy the file into the repository, or fetch it in a trusted build)"
	reasonVariable = "names its source with a variable, which a build argument may set to a URL fetched from the network (name the file itself in the Dockerfile)"
)

// remoteSource is an ADD that may fetch from the network: its line, its
// source as written and why it is refused (line 0: none).
type remoteSource struct {
	line        int
	src, reason string
}

// remoteAdd finds the first ADD of a Dockerfile (ONBUILD ADD included: it
// runs in a build FROM this image, which may be this pull request's next
// one) that may fetch from the network.
func remoteAdd(df []byte) (remoteSource, error) {
	p, err := parseDockerfile(df)
	if err != nil {
		return remoteSource{}, err
	}
	return remoteAddIn(p)
}

// remoteAddIn finds the first ADD of a parsed Dockerfile that may fetch from
// the network: a source that is a URL or a git repository once the builder
// has taken its quotes and escapes off, or that holds a variable ($U, ${U}),
// which a build argument may set to a URL.
//
// The Dockerfile is read a second time when it has a heredoc (<<): this
// parser reads one always, but an engine whose builder predates them reads
// the heredoc's lines as instructions, and an ADD among them would be run.
func remoteAddIn(p parsed) (remoteSource, error) {
	add, err := remoteAddInTree(p.ast, p.escape)
	if err != nil || add.line > 0 || !bytes.Contains(p.text, []byte("<<")) {
		return add, err
	}
	res, err := parser.Parse(bytes.NewReader(bytes.ReplaceAll(p.text, []byte("<<"), []byte("< <"))))
	if err != nil {
		return remoteSource{}, nil // that engine could not read it either
	}
	return remoteAddInTree(res.AST, res.EscapeToken)
}

var onbuildPrefix = regexp.MustCompile(`(?i)^\s*ONBUILD\s*`)

func remoteAddInTree(ast *parser.Node, escape rune) (remoteSource, error) {
	lex := shell.NewLex(escape)
	for _, node := range ast.Children {
		switch strings.ToLower(node.Value) {
		case "add":
			var sources []string
			if cmd, err := instructions.ParseInstruction(node); err == nil {
				if add, ok := cmd.(*instructions.AddCommand); ok {
					sources = add.SourcePaths
				}
			} else {
				for n := node.Next; n != nil && n.Next != nil; n = n.Next {
					sources = append(sources, n.Value) // all but the destination
				}
			}
			if src, reason := remoteSourceOf(lex, sources); reason != "" {
				return remoteSource{node.StartLine, src, reason}, nil
			}
		case "onbuild":
			// The trigger is read by the later build, as a Dockerfile of
			// its own (with the default escape character).
			expr := onbuildPrefix.ReplaceAllString(node.Original, "")
			for _, h := range node.Heredocs {
				expr += "\n" + h.Content + h.Name
			}
			trigger, err := remoteAdd([]byte("FROM scratch\n" + expr + "\n"))
			if err != nil {
				return remoteSource{}, fmt.Errorf("line %d: ONBUILD %s: %w", node.StartLine, expr, err)
			}
			if trigger.line > 0 {
				return remoteSource{node.StartLine, trigger.src, trigger.reason}, nil
			}
		}
	}
	return remoteSource{}, nil
}

// remoteSourceOf returns the first of an ADD's sources that may fetch from
// the network, and why.
func remoteSourceOf(lex *shell.Lex, sources []string) (src, reason string) {
	for _, s := range sources {
		if strings.Contains(s, "$") {
			return s, reasonVariable
		}
		// The builder drops quotes and escapes from a word: h"ttp":\//x is a URL.
		word, _, err := lex.ProcessWord(s, shell.EnvsFromSlice(nil))
		if err != nil {
			word = s
		}
		if isRemote(word) || isRemote(s) {
			return s, reasonNetwork
		}
	}
	return "", ""
}

// isRemote is a source the builder fetches instead of reading it from the
// context: a URL (any scheme) or a git repository.
func isRemote(s string) bool {
	w := strings.ToLower(s)
	return strings.Contains(w, "://") || strings.HasPrefix(w, "git@") || strings.HasPrefix(w, "github.com/")
}

func lineOf(loc []parser.Range) int {
	if len(loc) == 0 {
		return 1
	}
	return loc[0].Start.Line
}

// baseImage is an image a Dockerfile builds FROM, as the builder names it.
type baseImage struct {
	line int
	ref  string
}

// baseImages are the images the stages of a Dockerfile build FROM, their
// names expanded as the builder expands them (the arguments declared before
// the first FROM, with the build's values): not scratch, not an earlier
// stage.
func baseImages(p parsed, buildArgs map[string]string) ([]baseImage, error) {
	var env []string
	for _, arg := range p.metaArgs {
		for _, kv := range arg.Args {
			if v, ok := buildArgs[kv.Key]; ok {
				env = append(env, kv.Key+"="+v)
			} else if kv.Value != nil {
				env = append(env, kv.Key+"="+*kv.Value)
			}
		}
	}
	lex := shell.NewLex(p.escape)
	stages := map[string]bool{}
	var out []baseImage
	for _, stage := range p.stages {
		line := lineOf(stage.Location)
		ref, _, err := lex.ProcessWord(stage.BaseName, shell.EnvsFromSlice(env))
		if err != nil {
			return nil, fmt.Errorf("line %d: FROM %s: %v", line, stage.BaseName, err)
		}
		if ref != "scratch" && !stages[strings.ToLower(ref)] {
			out = append(out, baseImage{line, ref})
		}
		if stage.Name != "" {
			stages[strings.ToLower(stage.Name)] = true
		}
	}
	return out, nil
}

// checkBaseTriggers refuses a base image whose ONBUILD triggers, run by the
// build, may ADD from the network. An image the engine lacks is pulled
// first, as the builder would pull it (without credentials).
func (r *Runtime) checkBaseTriggers(ctx context.Context, base baseImage) error {
	res, err := r.client.ImageInspect(ctx, base.ref)
	if cerrdefs.IsNotFound(err) {
		if err = r.pullAnonymously(ctx, base.ref); err == nil {
			res, err = r.client.ImageInspect(ctx, base.ref)
		}
	}
	if err != nil {
		return fmt.Errorf("reading the base image's ONBUILD triggers: %s", engineMessage(err))
	}
	if res.Config == nil || len(res.Config.OnBuild) == 0 {
		return nil
	}
	triggers := "FROM scratch\n" + strings.Join(res.Config.OnBuild, "\n") + "\n"
	add, err := remoteAdd([]byte(triggers))
	if err != nil {
		return fmt.Errorf("its ONBUILD triggers: %w", err)
	}
	if add.line > 0 {
		return fmt.Errorf("its ONBUILD trigger ADD %s %s", add.src, add.reason)
	}
	return nil
}

// pullAnonymously pulls an image as the classic builder pulls a missing base
// image: with no credentials.
func (r *Runtime) pullAnonymously(ctx context.Context, ref string) error {
	res, err := r.client.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer res.Close()
	for msg, err := range res.JSONMessages(ctx) {
		if err != nil {
			return err
		}
		if msg.Error != nil {
			return errors.New(strings.TrimSpace(msg.Error.Message))
		}
	}
	return nil
}

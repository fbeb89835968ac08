package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
)

// An untrusted build (a pull request's Dockerfile) runs its RUN steps
// without a network, but the classic builder fetches an ADD of a URL
// itself, on the engine's network, and runs the ONBUILD triggers of the
// images it builds FROM. So before such a build, its Dockerfile and the
// triggers of its base images are read with the builder's parser
// (moby/buildkit's), and any ADD that may fetch from the network refuses the
// build.
//
// The engine's own parser may be older than this one, and the two read some
// files differently (directives, carriage returns, line continuations), so
// the engine is not given the file as written: it builds the canonical form
// of what was checked (one instruction per line, continuations joined, no
// comments or parser directives, heredocs as written), which this parser
// reads back to the same instructions, and which leaves the engine nothing
// to read otherwise.

// untrustedDockerfile is the name of the canonical Dockerfile in the build
// context an untrusted build sends.
const untrustedDockerfile = ".cutover-untrusted.Dockerfile"

// checkUntrustedBuild refuses an untrusted build (dockerfile: relative to
// contextDir, cleaned, slash separated; shown: how the user knows it) whose
// Dockerfile, or a base image's ONBUILD trigger, may ADD from the network,
// or reads an image it may not (mayRead: one cutover built, other than the
// images own, or one named by its ID), and returns the canonical Dockerfile
// the engine is to build, each image it reads pinned by ID.
func (r *Runtime) checkUntrustedBuild(ctx context.Context, contextDir, name, dockerfile, shown string, args map[string]string, own []string) ([]byte, error) {
	files, err := untrustedDockerfiles(contextDir, name, dockerfile, shown)
	if err != nil {
		return nil, err
	}
	var built []byte
	for i, f := range files {
		p, err := parseDockerfile(f.text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.shown, err)
		}
		if add, err := remoteAddIn(p); err != nil {
			return nil, fmt.Errorf("%s: %w", f.shown, err)
		} else if add.line > 0 {
			return nil, fmt.Errorf("%s line %d: ADD %s %s", f.shown, add.line, add.src, add.reason)
		}
		uses, err := imageUses(p.ast.Children, p, args)
		if err != nil {
			return nil, fmt.Errorf("%s %w", f.shown, err)
		}
		hidden, err := heredocFreeUses(p, args)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.shown, err)
		}
		pins := map[int]string{}
		checked := map[string]string{}
		for _, use := range append(uses, hidden...) {
			key := fmt.Sprint(use.what, use.ref, use.done)
			id, ok := checked[key]
			if !ok {
				if id, err = r.checkImageUse(ctx, use, own); err != nil {
					return nil, fmt.Errorf("%s line %d: %s: %w", f.shown, use.line, use, err)
				}
				checked[key] = id
			}
			if use.node >= 0 {
				pins[use.node] = id
			}
		}
		if i == 0 {
			if built, err = canonicalPinned(p, pins); err != nil {
				return nil, fmt.Errorf("%s: %w", f.shown, err)
			}
		}
	}
	return built, nil
}

// canonical is the Dockerfile the engine builds for p: each instruction on a
// line of its own as the parser joined it, then its heredocs; no comments,
// no parser directives (p has the default escape). It must read back to the
// same instructions, or the build is refused.
func canonical(p parsed) ([]byte, error) {
	return canonicalPinned(p, nil)
}

// canonicalPinned is canonical, with the image each instruction of pins (its
// index in p.ast.Children) reads named by the ID pins gives (pinned): the
// image checked, whatever its name names by the time the engine reads it.
func canonicalPinned(p parsed, pins map[int]string) ([]byte, error) {
	var b bytes.Buffer
	want := slices.Clone(p.ast.Children)
	for i, node := range p.ast.Children {
		original := node.Original
		if id, ok := pins[i]; ok {
			var err error
			if original, want[i], err = pinned(node, id); err != nil {
				return nil, err
			}
		}
		if strings.ContainsAny(original, "\r\n") {
			return nil, fmt.Errorf("line %d: an instruction with a line break inside it: write it on lines ending in \\ instead", node.StartLine)
		}
		if strings.HasSuffix(strings.TrimRight(original, " \t"), "\\") {
			return nil, fmt.Errorf("line %d: the instruction ends in \\, which engines take for a line continuation or not: end it otherwise", node.StartLine)
		}
		b.WriteString(original)
		b.WriteByte('\n')
		for _, h := range node.Heredocs {
			// An engine without heredocs reads these lines as instructions:
			// one ending in \ would join the next to itself (the engine's
			// parser joins lines in time growing with the square of their
			// number: a minute for 2.4 MB, going on when the build is given
			// up).
			for _, line := range strings.Split(h.Content+h.Name, "\n") {
				if strings.HasSuffix(strings.TrimRight(strings.TrimSuffix(line, "\r"), " \t"), "\\") {
					return nil, fmt.Errorf("line %d: a heredoc line ends in \\, which engines without heredocs take for a line continuation: end it otherwise", node.StartLine)
				}
			}
			b.WriteString(h.Content)
			b.WriteString(h.Name)
			b.WriteByte('\n')
		}
	}
	back, err := parser.Parse(bytes.NewReader(b.Bytes()))
	if err != nil || !sameInstructions(want, back.AST.Children) || back.EscapeToken != '\\' {
		return nil, fmt.Errorf("the builder reads its canonical form differently (%v): write each instruction plainly", err)
	}
	return b.Bytes(), nil
}

// sameInstructions: the same instructions, flags, words and heredocs.
func sameInstructions(a, b []*parser.Node) bool {
	if len(a) != len(b) {
		return false
	}
	for i, x := range a {
		y := b[i]
		if x.Dump() != y.Dump() || x.Original != y.Original || !maps.Equal(x.Attributes, y.Attributes) || !slices.Equal(x.Heredocs, y.Heredocs) {
			return false
		}
	}
	return true
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
	for i, line := range bytes.Split(df, []byte("\n")) {
		if bytes.Contains(bytes.TrimSuffix(line, []byte("\r")), []byte("\r")) {
			return parsed{}, fmt.Errorf("line %d holds a carriage return that does not end it, which parsers read differently (save the file with LF or CRLF line ends)", i+1)
		}
	}
	res, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		return parsed{}, fmt.Errorf("the builder cannot read it: %v", err)
	}
	if res.EscapeToken != '\\' {
		return parsed{}, fmt.Errorf("its escape parser directive makes %c the escape character: an untrusted build takes the default, \\, as engines read the directive differently (remove the directive)", res.EscapeToken)
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
	res, err := heredocFree(p)
	if err != nil {
		return remoteSource{}, err
	}
	return remoteAddInTree(res.AST, res.EscapeToken)
}

// heredocFree reads p as an engine without heredocs reads it: "<<" becomes
// "< ", so no heredoc starts, and no line grows longer than it was.
func heredocFree(p parsed) (*parser.Result, error) {
	res, err := parser.Parse(bytes.NewReader(bytes.ReplaceAll(p.text, []byte("<<"), []byte("< "))))
	if err != nil {
		return nil, fmt.Errorf("read as an engine without heredocs reads it, the builder cannot read it: %v", err)
	}
	return res, nil
}

var onbuildPrefix = regexp.MustCompile(`(?i)^\s*ONBUILD\s*`)

// onbuildTrigger is the trigger of an ONBUILD instruction, with its heredocs.
func onbuildTrigger(node *parser.Node) string {
	expr := onbuildPrefix.ReplaceAllString(node.Original, "")
	for _, h := range node.Heredocs {
		expr += "\n" + h.Content + h.Name
	}
	return expr
}

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
			// An engine's parser may take a JSON array with words after it
			// as the array (this one reads words then): read it both ways.
			// The array is what follows the keyword and the flags, which may
			// hold a '[' of their own.
			rest, flags := argsAfterFlags(node.Original)
			if !slices.Equal(flags, node.Flags) {
				return remoteSource{}, fmt.Errorf("line %d: the flags of %s read differently: write them plainly", node.StartLine, node.Original)
			}
			for _, s := range []string{rest, node.Original[max(strings.IndexByte(node.Original, '['), 0):]} {
				var list []string
				if strings.HasPrefix(s, "[") && json.NewDecoder(strings.NewReader(s)).Decode(&list) == nil && len(list) > 0 {
					sources = append(sources, list[:len(list)-1]...)
				}
			}
			if src, reason := remoteSourceOf(lex, sources); reason != "" {
				return remoteSource{node.StartLine, src, reason}, nil
			}
		case "onbuild":
			// The trigger is read by the later build, as a Dockerfile of
			// its own (with the default escape character).
			expr := onbuildTrigger(node)
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

// argsAfterFlags splits an instruction as engines' parsers split it: the
// keyword ends at the first space, tab, vertical tab, form feed or carriage
// return; then come the flags, words starting with --, in which quotes group
// and a backslash escapes the next byte, each ended by a byte that is white
// space as a rune of its own (0x85 and 0xa0 are); the rest, trimmed, is what
// the engine reads as the arguments (a JSON array when it starts with '[').
func argsAfterFlags(line string) (rest string, flags []string) {
	line = strings.TrimSpace(line)
	i := strings.IndexAny(line, "\t\v\f\r ")
	if i < 0 {
		return "", nil
	}
	line = line[i:]
	space := func(b byte) bool { return unicode.IsSpace(rune(b)) }
	flags = []string{}
	for pos := 0; ; {
		for pos < len(line) && space(line[pos]) {
			pos++
		}
		if pos == len(line) {
			return "", flags
		}
		if !strings.HasPrefix(line[pos:], "--") || pos+2 > len(line) {
			return strings.TrimSpace(line[pos:]), flags
		}
		var word []byte
		var quote byte
		quoted := false
		for ; pos < len(line); pos++ {
			c := line[pos]
			switch {
			case quote == 0 && space(c):
			case quote == 0 && (c == '\'' || c == '"'):
				quote, quoted = c, true
				continue
			case quote != 0 && c == quote:
				quote = 0
				continue
			case c == '\\':
				if pos+1 < len(line) {
					pos++
					word = append(word, line[pos])
				} else if quote != 0 {
					quote = 0
				}
				continue
			default:
				word = append(word, c)
				continue
			}
			break
		}
		if quote == 0 && pos < len(line) && string(word) == "--" {
			return strings.TrimSpace(line[pos:]), flags
		}
		if string(word) != "--" && (quoted || len(word) > 0) {
			flags = append(flags, string(word))
		}
	}
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
		if isRemote(word) || isRemote(s) || isRemote(unquoted.Replace(s)) {
			return s, reasonNetwork
		}
	}
	return "", ""
}

// unquoted deletes what a lexer may drop from a word (quotes, escapes), in
// case an engine's lexer drops more than this one.
var unquoted = strings.NewReplacer(`\\`, "", "`", "", `"`, "", "'", "")

// isRemote is a source the builder fetches instead of reading it from the
// context: a URL (any scheme) or a git repository.
func isRemote(s string) bool {
	w := strings.ToLower(s)
	return strings.Contains(w, "://") || strings.HasPrefix(w, "git@") || strings.HasPrefix(w, "github.com/")
}

// imageUse is an image a Dockerfile's build reads: the base of a stage, or
// the source of a COPY --from, in the Dockerfile or in an ONBUILD trigger,
// named as the builder names it (a FROM's variables expanded).
type imageUse struct {
	line int
	what string // "FROM ", "COPY --from=", "ONBUILD COPY --from="
	ref  string
	// node is the instruction's index in the Dockerfile's syntax tree, whose
	// image the canonical Dockerfile pins by ID; -1: none (a trigger, or a
	// line an engine without heredocs reads).
	node int
	// done are the stages built before a FROM's (their names, lowercase;
	// "" for one without): a COPY --from of its base's triggers may name
	// them.
	done []string
}

func (u imageUse) String() string { return u.what + u.ref }

// imageUses are the images the instructions of a Dockerfile read: not
// scratch, not a stage the builder has built by then. A COPY --from names a
// stage by its index or its name (in any case), or else an image (the
// classic builder takes a name or an ID there); one with a variable is
// refused, as an engine may expand it.
func imageUses(children []*parser.Node, p parsed, buildArgs map[string]string) ([]imageUse, error) {
	env := shell.EnvsFromSlice(metaEnv(p, buildArgs))
	lex := shell.NewLex(p.escape)
	var stages []string
	var out []imageUse
	for i, node := range children {
		switch strings.ToLower(node.Value) {
		case "from":
			cmd, err := instructions.ParseInstruction(node)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", node.StartLine, err)
			}
			stage, ok := cmd.(*instructions.Stage)
			if !ok {
				continue
			}
			ref, _, err := lex.ProcessWord(stage.BaseName, env)
			if err != nil {
				return nil, fmt.Errorf("line %d: FROM %s: %v", node.StartLine, stage.BaseName, err)
			}
			if ref != "scratch" && !slices.Contains(stages, strings.ToLower(ref)) {
				out = append(out, imageUse{node.StartLine, "FROM ", ref, i, slices.Clone(stages)})
			}
			stages = append(stages, strings.ToLower(stage.Name))
		case "copy":
			from, err := copyFrom(node)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", node.StartLine, err)
			}
			if from != "" && !isStage(from, stages[:max(len(stages)-1, 0)]) {
				out = append(out, imageUse{node.StartLine, "COPY --from=", from, i, nil})
			}
		case "onbuild":
			from, err := triggerCopyFrom(onbuildTrigger(node))
			if err != nil {
				return nil, fmt.Errorf("line %d: ONBUILD %w", node.StartLine, err)
			}
			// It runs in a later stage built FROM this one: this one and
			// those before it are built by then.
			if from != "" && !isStage(from, stages) {
				out = append(out, imageUse{node.StartLine, "ONBUILD COPY --from=", from, -1, nil})
			}
		}
	}
	return out, nil
}

// heredocFreeUses are the images the heredoc-free reading of p (see
// remoteAddIn) reads: an engine without heredocs reads a FROM or a COPY
// --from among a heredoc's lines as an instruction. None is pinned.
func heredocFreeUses(p parsed, buildArgs map[string]string) ([]imageUse, error) {
	if !bytes.Contains(p.text, []byte("<<")) {
		return nil, nil
	}
	res, err := heredocFree(p)
	if err != nil {
		return nil, err
	}
	uses, err := imageUses(res.AST.Children, p, buildArgs)
	if err != nil {
		return nil, fmt.Errorf("read as an engine without heredocs reads it, %w", err)
	}
	for i := range uses {
		uses[i].node = -1
	}
	return uses, nil
}

// metaEnv are the arguments declared before the first FROM, with the
// build's values: what a FROM's variables expand to.
func metaEnv(p parsed, buildArgs map[string]string) []string {
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
	return env
}

// copyFrom is the --from of a COPY, as written ("" without one).
func copyFrom(node *parser.Node) (string, error) {
	if _, flags := argsAfterFlags(node.Original); !slices.Equal(flags, node.Flags) {
		return "", fmt.Errorf("the flags of %s read differently: write them plainly", node.Original)
	}
	from := ""
	for _, flag := range node.Flags {
		name, value, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
		switch {
		case !strings.EqualFold(name, "from"):
		case strings.Contains(value, "$"):
			return "", fmt.Errorf("COPY --from=%s names its source with a variable, which a build argument may set to any image (name the stage or the image itself)", value)
		case from != "":
			return "", fmt.Errorf("COPY %s has more than one --from: give it one", strings.Join(node.Flags, " "))
		default:
			from = value
		}
	}
	return from, nil
}

// triggerCopyFrom is the --from of an ONBUILD trigger that is a COPY ("" for
// any other), read as the builder reads a trigger: a Dockerfile of its own.
func triggerCopyFrom(trigger string) (string, error) {
	res, err := parser.Parse(strings.NewReader(trigger + "\n"))
	if err != nil {
		return "", fmt.Errorf("%s: the builder cannot read it: %v", trigger, err)
	}
	for _, node := range res.AST.Children {
		if strings.EqualFold(node.Value, "copy") {
			return copyFrom(node)
		}
	}
	return "", nil
}

// isStage: from (a COPY --from) names one of the stages done, or a stage
// by its index (which the builder refuses unless it is done).
func isStage(from string, done []string) bool {
	if _, err := strconv.Atoi(from); err == nil {
		return true
	}
	return from != "" && slices.Contains(done, strings.ToLower(from))
}

// checkImageUse refuses an image the build reads that it may not read
// (mayRead), or a base image whose ONBUILD triggers, run by the build, may
// ADD from the network or read an image it may not; it returns the image's
// ID. An image the engine lacks is pulled first, as the builder would pull
// it (without credentials).
func (r *Runtime) checkImageUse(ctx context.Context, use imageUse, own []string) (string, error) {
	res, err := r.client.ImageInspect(ctx, use.ref)
	if cerrdefs.IsNotFound(err) {
		if err = r.pullAnonymously(ctx, use.ref); err == nil {
			res, err = r.client.ImageInspect(ctx, use.ref)
		}
	}
	if err != nil {
		if use.what == "FROM " {
			return "", fmt.Errorf("reading the base image's ONBUILD triggers: %s", engineMessage(err))
		}
		return "", fmt.Errorf("reading the image: %s", engineMessage(err))
	}
	var triggers []string
	if res.Config != nil && use.what == "FROM " {
		triggers = res.Config.OnBuild
	}
	// The builder reads each trigger on its own, a Dockerfile of one
	// instruction: read together, one ending in the escape character would
	// join the next to itself.
	for _, trigger := range triggers {
		if err := checkTrigger(trigger); err != nil {
			return "", err
		}
	}
	if err := mayRead(use.ref, res.InspectResponse, own); err != nil {
		return "", err
	}
	for _, trigger := range triggers {
		from, err := triggerCopyFrom(trigger)
		if err != nil {
			return "", fmt.Errorf("its ONBUILD trigger %w", err)
		}
		if from == "" || isStage(from, use.done) {
			continue
		}
		if _, err := r.checkImageUse(ctx, imageUse{what: "COPY --from=", ref: from}, own); err != nil {
			return "", fmt.Errorf("its ONBUILD trigger COPY --from=%s: %w", from, err)
		}
	}
	return res.ID, nil
}

// builtByCutover are the labels cutover's builds give an image (and an image
// built FROM it inherits): its services' images, and the images an
// integration run builds for its compose services (integration.Label).
var builtByCutover = []string{LabelProject, LabelStore, LabelBuild, LabelCommit, "dev.cutover.integration"}

// mayRead refuses an image an untrusted build may not read (unless it is
// one of own, the images its run built): one cutover built, which may hold
// what a trusted build fetched with its credentials or network; and one
// named by its ID rather than by its repository, which may be any image on
// the engine, a trusted build's step (they carry no labels) among them.
func mayRead(ref string, img image.InspectResponse, own []string) error {
	if slices.Contains(own, img.ID) {
		return nil
	}
	if !namedBy(ref, img) {
		return fmt.Errorf("names an image by its ID (%.19s), which may be a step of any build on this engine: an untrusted build names the images it reads by repository (as alpine:3.20, or alpine@sha256:… for a digest)", img.ID)
	}
	if img.Config != nil {
		for _, label := range builtByCutover {
			value, ok := img.Config.Labels[label]
			if !ok {
				continue
			}
			by := label + "=" + value
			if project := img.Config.Labels[LabelProject]; project != "" {
				by = "project " + project
			}
			return fmt.Errorf("the image was built by cutover (%s), and may hold what its build fetched: an untrusted build reads only scratch, its own stages, its run's images and images cutover did not build (build FROM what that one was built FROM instead)", by)
		}
	}
	return nil
}

// namedBy: the engine found img under the name ref (a tag, or a digest it
// was pushed or pulled as), not by its ID or a prefix of it.
func namedBy(ref string, img image.InspectResponse) bool {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false // sha256:…, or 64 hexadecimal digits: an ID
	}
	names := img.RepoTags
	if digested, ok := named.(reference.Canonical); ok {
		// The engine looks a name with a tag and a digest up by the digest.
		named, names = reference.TrimNamed(named), img.RepoDigests
		if named, err = reference.WithDigest(named, digested.Digest()); err != nil {
			return false
		}
	} else {
		named = reference.TagNameOnly(named)
	}
	for _, name := range names {
		if n, err := reference.ParseNormalizedNamed(name); err == nil && n.String() == named.String() {
			return true
		}
	}
	return false
}

// pinned is a FROM or COPY --from instruction that reads the image id
// instead of the one it names, and its syntax tree, which must read as the
// instruction's, with id in place of its image.
func pinned(node *parser.Node, id string) (string, *parser.Node, error) {
	keyword := strings.ToUpper(node.Value)
	words := []string{keyword}
	var flags []string
	for _, flag := range node.Flags {
		if name, _, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "="); keyword == "COPY" && strings.EqualFold(name, "from") {
			flag = "--from=" + id
		}
		flags = append(flags, flag)
	}
	words = append(words, flags...)
	var args []string
	for n := node.Next; n != nil; n = n.Next {
		args = append(args, n.Value)
	}
	if keyword == "FROM" && len(args) > 0 {
		args[0] = id
	}
	if node.Attributes["json"] {
		list, _ := json.Marshal(args)
		words = append(words, string(list))
	} else {
		words = append(words, args...)
	}
	line := strings.Join(words, " ")
	text := line + "\n"
	for _, h := range node.Heredocs {
		text += h.Content + h.Name + "\n"
	}
	res, err := parser.Parse(strings.NewReader(text))
	if err != nil || len(res.AST.Children) != 1 {
		return "", nil, fmt.Errorf("line %d: %s reads differently with its image pinned by ID (%v): write it plainly", node.StartLine, node.Original, err)
	}
	back := res.AST.Children[0]
	var gotArgs []string
	for n := back.Next; n != nil; n = n.Next {
		gotArgs = append(gotArgs, n.Value)
	}
	if !strings.EqualFold(back.Value, keyword) || !slices.Equal(back.Flags, flags) || !slices.Equal(gotArgs, args) || !maps.Equal(back.Attributes, node.Attributes) {
		return "", nil, fmt.Errorf("line %d: %s reads differently with its image pinned by ID: write it plainly", node.StartLine, node.Original)
	}
	return line, back, nil
}

// checkTrigger refuses a base image's ONBUILD trigger that may ADD from the
// network.
func checkTrigger(trigger string) error {
	// The engine reads a trigger as a Dockerfile whose first line is the
	// trigger's: one that spans lines may start with a parser directive
	// (escape) that the reading below, after a FROM line, takes for a
	// comment.
	if strings.ContainsAny(trigger, "\r\n") {
		return fmt.Errorf("its ONBUILD trigger %q spans lines, which engines read differently: an untrusted build takes a base whose triggers are one line each", trigger)
	}
	add, err := remoteAdd([]byte("FROM scratch\n" + trigger + "\n"))
	if err != nil {
		return fmt.Errorf("its ONBUILD trigger %s: %w", trigger, err)
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

// withFile is the tar stream src with the regular file name (at its root)
// holding data, in place of any entry of that name. Closing it ends the
// copy.
func withFile(src io.Reader, name string, data []byte) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tr, tw := tar.NewReader(src), tar.NewWriter(pw)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if path.Clean(strings.TrimPrefix(h.Name, "./")) == name {
				continue
			}
			if err := tw.WriteHeader(h); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := io.Copy(tw, tr); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX})
		if err == nil {
			_, err = tw.Write(data)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

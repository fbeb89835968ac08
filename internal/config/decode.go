package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Load reads, decodes, defaults and validates the configuration file at path. Build
// contexts are checked relative to the file's directory. The error is a Problems listing
// everything wrong, or a plain error when the file cannot be read.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		hint := "write one, run cutover in the directory that has it, or name it with -f; `cutover schema` prints its JSON Schema"
		for _, compose := range []string{"docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml"} {
			if _, err := os.Stat(filepath.Join(filepath.Dir(path), compose)); err == nil {
				hint = "run `cutover init --compose " + compose + "` to write one from " + compose
				break
			}
		}
		return nil, fmt.Errorf("%s does not exist (%s)", path, hint)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the configuration: %w", err)
	}
	return ParseDir(path, filepath.Dir(path), data)
}

// Parse decodes, defaults and validates a configuration from memory. filename is only used
// in messages. The filesystem is not looked at: build contexts are not checked.
func Parse(filename string, data []byte) (*Config, error) {
	return ParseDir(filename, "", data)
}

// ParseDir is Parse with build contexts and Dockerfiles checked relative to baseDir
// (skipped when baseDir is "").
//
// Every problem of the file is reported in one run: values of the wrong shape and unknown
// keys are set aside, the rest is decoded, defaulted and validated, and the problems of
// both phases come back together (a problem that only follows from a value set aside,
// such as "missing" for a port that was not a number, is left out). Malformed YAML is the
// exception: nothing after the syntax error can be read, so it is reported with the unknown
// keys and wrongly shaped values of the lines before it, and nothing is validated.
func ParseDir(filename, baseDir string, data []byte) (*Config, error) {
	return parse(filename, baseDir, "", data)
}

// parse is ParseDir with the paths confined to root ("" = baseDir).
func parse(filename, baseDir, root string, data []byte) (*Config, error) {
	c, shape, err := decode(filename, data)
	if err != nil {
		return nil, err
	}
	c.dir, c.root = baseDir, root
	c.applyDefaults()
	var ps Problems
	if err := c.Validate(); err != nil {
		if !errors.As(err, &ps) {
			return nil, err
		}
	}
	ps = append(shape.problems, shape.consequences(ps)...)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// position is where a key is written; null marks "key:" with no value, which counts as
// not set for defaults.
type position struct {
	line, col int
	null      bool
}

// maxNodes bounds the work of checking one file, so that a few lines of nested aliases
// (a "billion laughs" document) cannot make it expand forever.
const maxNodes = 200_000

// decode turns the YAML into a Config without defaults. Every key is checked against the
// Go types first, by walking the node tree, so that unknown keys and wrongly typed values
// are all reported with their line:col; the walk sets those values aside (see walker), so
// the rest still decodes and can be validated. The walker is returned with its problems;
// err is only set when nothing could be decoded.
func decode(filename string, data []byte) (c *Config, w *walker, err error) {
	defer func() {
		// The YAML library must not crash the CLI on any input; report it as a problem.
		if r := recover(); r != nil {
			c, w, err = nil, nil, Problems{{File: filename, Message: fmt.Sprintf("the YAML parser failed on this file: %v (simplify the file, and report this input as a bug)", r)}}
		}
	}()
	if p := encodingProblem(filename, data); p != nil {
		return nil, nil, Problems{*p}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		syntax := syntaxProblem(filename, err)
		return nil, nil, append(Problems{syntax}, beforeSyntaxError(filename, data, syntax.Line)...).err()
	}
	if len(doc.Content) == 0 {
		return nil, nil, Problems{{File: filename, Message: "the file is empty (write version: 1, project, services and environments, or run `cutover init`)"}}
	}
	root := doc.Content[0]
	w = &walker{file: filename, keys: map[string]position{"": {line: root.Line, col: root.Column}}, setAside: map[string]bool{}}
	if root.Kind != yaml.MappingNode {
		w.problem(root, "", "the file must be a mapping of keys such as version, project, services (found %s)", kindName(root))
		return nil, nil, w.problems
	}
	w.walk(root, reflect.TypeFor[Config](), "")
	if w.fatal || w.visits >= maxNodes {
		return nil, nil, w.problems.err()
	}
	c = &Config{File: filename, keys: w.keys}
	if err := root.Decode(c); err != nil {
		// The walk checks what Decode checks; this is a safety net for corners it misses.
		ps, _ := decodeProblems(filename, err).(Problems)
		return nil, nil, append(w.problems, ps...).err()
	}
	return c, w, nil
}

// beforeSyntaxError checks the lines before a syntax error on line (when they parse on
// their own) for unknown keys and values of the wrong shape, so that one run reports those
// too. Nothing is validated: what follows the error cannot be read, so a missing field
// may only be below it.
func beforeSyntaxError(filename string, data []byte, line int) Problems {
	if line <= 1 {
		return nil
	}
	lines := strings.SplitAfter(string(data), "\n")
	if line-1 > len(lines) {
		return nil
	}
	var doc yaml.Node
	if yaml.Unmarshal([]byte(strings.Join(lines[:line-1], "")), &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	w := &walker{file: filename, keys: map[string]position{}, setAside: map[string]bool{}}
	w.walk(doc.Content[0], reflect.TypeFor[Config](), "")
	return w.problems
}

// encodingProblem is the problem of a file in an encoding the YAML parser
// does not read, or nil. It reads UTF-8, with or without a byte order mark,
// and UTF-16 with one; of anything else (UTF-16 without a byte order mark,
// UTF-32, Latin-1) it would say "control characters are not allowed" or
// "invalid UTF-8 octet", as if the YAML were wrong.
func encodingProblem(filename string, data []byte) *Problem {
	const fix = " (save it as UTF-8)"
	utf32 := bytes.HasPrefix(data, []byte{0xff, 0xfe, 0, 0}) || bytes.HasPrefix(data, []byte{0, 0, 0xfe, 0xff})
	switch {
	case utf32:
		return &Problem{File: filename, Message: "the file is UTF-32, not UTF-8" + fix}
	case bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}):
		return nil // UTF-16 with its byte order mark
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		if utf16WithoutBOM(data) {
			return &Problem{File: filename, Message: "the file is UTF-16 (without a byte order mark), not UTF-8" + fix}
		}
		line, col := lineCol(data, i)
		return &Problem{File: filename, Line: line, Col: col, Message: "a NUL byte: the file is not UTF-8 text" + fix}
	}
	if utf8.Valid(data) {
		return nil
	}
	i := 0
	for i < len(data) {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		i += n
	}
	line, col := lineCol(data, i)
	return &Problem{File: filename, Line: line, Col: col,
		Message: fmt.Sprintf("byte 0x%02x is not UTF-8: the file is in another encoding, such as Latin-1 or Windows-1252%s", data[i], fix)}
}

// utf16WithoutBOM tells whether data looks like UTF-16 text without a byte
// order mark: in its first bytes, the NULs of ASCII characters' high halves
// are all at odd offsets (little-endian) or all at even ones (big-endian).
func utf16WithoutBOM(data []byte) bool {
	head := data[:min(len(data), 256)]
	var nul [2]int
	for i, b := range head {
		if b == 0 {
			nul[i%2]++
		}
	}
	half := len(head) / 2
	return (nul[0] == 0) != (nul[1] == 0) && max(nul[0], nul[1]) >= half/2
}

// lineCol is the 1-based line and column (in characters) of data's byte i.
func lineCol(data []byte, i int) (line, col int) {
	start := bytes.LastIndexByte(data[:i], '\n') + 1
	return bytes.Count(data[:i], []byte("\n")) + 1, utf8.RuneCount(data[start:i]) + 1
}

var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlParserErrors are the messages of yaml.v3's parser (parserc.go), whose
// "line N" is the mark's zero-based line: one line before the line meant
// (its scanner's errors count from one).
var yamlParserErrors = []string{
	"did not find expected ',' or ']'", "did not find expected ',' or '}'", "did not find expected '-' indicator",
	"did not find expected key", "did not find expected node content", "found undefined tag handle",
	"did not find expected <document start>", "did not find expected <stream-start>",
	"found duplicate %TAG directive", "found duplicate %YAML directive", "found incompatible YAML document",
}

func syntaxProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := Problem{File: file, Message: "malformed YAML: " + msg + " (check indentation and quoting from this line to the end of its block)"}
	if g := yamlLineRe.FindStringSubmatch(err.Error()); g != nil {
		p.Line, _ = strconv.Atoi(g[1])
		if slices.Contains(yamlParserErrors, g[2]) {
			p.Line++
		}
		p.Message = "malformed YAML: " + g[2] + " (check indentation and quoting from this line to the end of its block)"
	}
	return p
}

func decodeProblems(file string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return Problems{syntaxProblem(file, err)}
	}
	var ps Problems
	for _, e := range te.Errors {
		ps = append(ps, syntaxProblem(file, errors.New(e)))
	}
	return ps.err()
}

// walker checks a node tree against Go types and records where each key is written. A
// value of the wrong shape is reported and then set aside (made null, its path recorded),
// and a key that cannot be decoded (written twice, not a name, a bad merge) is removed,
// so that the rest of the file still decodes and its semantic problems are found too.
type walker struct {
	file     string
	keys     map[string]position
	problems Problems
	visits   int
	merging  map[*yaml.Node]bool // mappings being merged now, to stop merge cycles
	setAside map[string]bool     // paths whose value was reported and set aside
	fatal    bool                // the tree cannot be decoded (too big, or a merge cycle)
}

// reject reports a value of the wrong shape and sets it aside: the node becomes null.
func (w *walker) reject(n *yaml.Node, path, format string, args ...any) {
	w.problem(n, path, format, args...)
	w.setAside[path] = true
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
}

// consequences returns the problems of ps that do not follow from a value set aside: a
// problem at a set-aside path or below it repeats what the walk already reported.
func (w *walker) consequences(ps Problems) Problems {
	var out Problems
	for _, p := range ps {
		if !w.covers(p.Path) {
			out = append(out, p)
		}
	}
	return out
}

func (w *walker) covers(path string) bool {
	for p := path; p != ""; {
		if w.setAside[p] {
			return true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return false
}

var durationType = reflect.TypeFor[Duration]()

func (w *walker) problem(n *yaml.Node, path, format string, args ...any) {
	w.problems = append(w.problems, Problem{File: w.file, Line: n.Line, Col: n.Column, Path: path, Message: fmt.Sprintf(format, args...)})
}

// spend counts one step of the walk and says whether the budget allows it.
func (w *walker) spend(n *yaml.Node, path string) bool {
	w.visits++
	if w.visits == maxNodes {
		w.problem(n, path, "the file has too many values or aliases to check (expand the aliases, or write a smaller file)")
	}
	return w.visits < maxNodes
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if !w.spend(n, path) {
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
	}
	if isNull(n) {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		if w.expect(n, path, yaml.ScalarNode, `a duration such as "5s"`) {
			if _, err := ParseDuration(n.Value); err != nil {
				w.reject(n, path, "%s", err.Error())
			}
		}
	case t.Kind() == reflect.Struct:
		if w.expect(n, path, yaml.MappingNode, "a mapping of keys") {
			w.walkMapping(n, path, func(key string) (reflect.Type, bool) {
				f, ok := yamlFields(t)[key]
				return f, ok
			}, t)
		}
	case t.Kind() == reflect.Map:
		if w.expect(n, path, yaml.MappingNode, "a mapping of names to values") {
			w.walkMapping(n, path, func(string) (reflect.Type, bool) { return t.Elem(), true }, nil)
		}
	case t.Kind() == reflect.Slice:
		if w.expect(n, path, yaml.SequenceNode, `a list (write [a, b] or one "- item" per line)`) {
			for i, item := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				w.keys[p] = position{line: item.Line, col: item.Column}
				w.walk(item, t.Elem(), p)
			}
		}
	case t.Kind() == reflect.String:
		w.expect(n, path, yaml.ScalarNode, "a text value")
	case t.Kind() == reflect.Int:
		if w.expect(n, path, yaml.ScalarNode, "a whole number") && n.Decode(new(int)) != nil {
			w.reject(n, path, "%q is not a whole number (write a number such as 3)", n.Value)
		}
	case t.Kind() == reflect.Bool:
		if w.expect(n, path, yaml.ScalarNode, "true or false") && n.Decode(new(bool)) != nil {
			w.reject(n, path, "%q is not true or false (write true or false)", n.Value)
		}
	}
}

// walkMapping checks the keys of a mapping; fieldType says what a key holds, or that it is
// unknown. structType is set for structs, to list the known keys in the message.
func (w *walker) walkMapping(n *yaml.Node, path string, fieldType func(string) (reflect.Type, bool), structType reflect.Type) {
	seen := map[string]int{}
	keep := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			// "<<: *anchor" merges another mapping's keys; check them as if written here.
			if w.walkMerge(v, path, fieldType, structType) {
				keep = append(keep, k, v)
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			w.problem(k, path, "keys must be plain names (found %s)", kindName(k))
			continue
		}
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			w.problem(k, p, "%q is written twice, first on line %d (keep one)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		keep = append(keep, k, v)
		if path == "" && strings.HasPrefix(k.Value, "x-") {
			// Extension keys, as in compose files: a place for anchors, otherwise ignored.
			continue
		}
		ft, ok := fieldType(k.Value)
		if !ok {
			w.problem(k, p, "unknown key %q (%s)", k.Value, suggestKey(k.Value, structType))
			continue
		}
		w.keys[p] = position{line: k.Line, col: k.Column, null: isNull(v)}
		w.walk(v, ft, p)
	}
	n.Content = keep
}

// walkMerge checks the mappings that "<<" merges and says whether the merge can be kept.
func (w *walker) walkMerge(v *yaml.Node, path string, fieldType func(string) (reflect.Type, bool), structType reflect.Type) bool {
	if !w.spend(v, path) {
		return false
	}
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	// A mapping that merges itself, directly or through others, would never end.
	if w.merging[v] {
		w.problem(v, path, "<< merges a mapping into itself (merge a different anchor)")
		w.fatal = true
		return false
	}
	if w.merging == nil {
		w.merging = map[*yaml.Node]bool{}
	}
	w.merging[v] = true
	defer delete(w.merging, v)
	switch v.Kind {
	case yaml.MappingNode:
		w.walkMapping(v, path, fieldType, structType)
		return true
	case yaml.SequenceNode:
		ok := true
		for _, item := range v.Content {
			ok = w.walkMerge(item, path, fieldType, structType) && ok
		}
		return ok
	default:
		w.problem(v, path, "<< must merge a mapping, found %s (write <<: *anchor)", kindName(v))
		return false
	}
}

func (w *walker) expect(n *yaml.Node, path string, kind yaml.Kind, what string) bool {
	if n.Kind == kind {
		return true
	}
	w.reject(n, path, "expected %s, found %s", what, kindName(n))
	return false
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return fmt.Sprintf("%q", n.Value)
}

// yamlFields maps the yaml keys of a struct type to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Anonymous && opts == "inline" && f.Type.Kind() == reflect.Struct {
			maps.Copy(fields, yamlFields(f.Type)) // an inlined struct's keys are the parent's
			continue
		}
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		fields[name] = f.Type
	}
	return fields
}

// Find is where the configuration named name (a bare file name, such as
// cutover.yaml) is for a command run in dir: dir's own file, or else the
// nearest one in dir's parents up to the root of the git repository dir is
// in (the directory holding .git), as git finds its repository from a
// subdirectory. It returns name unchanged when there is none, so the error
// is Load's.
func Find(dir, name string) string {
	if filepath.Base(name) != name {
		return name
	}
	for d := dir; ; {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			if d == dir {
				return name
			}
			return p
		}
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			return name // the repository's root: a file above it is another project's
		}
		up := filepath.Dir(d)
		if up == d {
			return name
		}
		d = up
	}
}

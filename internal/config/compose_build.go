package config

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// buildOutputDirs are the directories that hold build outputs by convention: a
// Dockerfile that copies from one of them expects the files to be built first.
var buildOutputDirs = map[string]bool{"bin": true, "dist": true, "build": true, "out": true, "target": true}

// buildCommands reads the Dockerfile of a build. When it copies files that are build
// outputs (missing from the repository, or under bin/, dist/, ...) rather than sources,
// it returns the commands that produce them, as the repository says: a Go main package
// in the context is built with `go build -o` to each copied path; a package.json with a
// build script runs `npm ci` and `npm run build`. Otherwise it notes what to add by hand.
func (m *composeMapper) buildCommands(name, contextDir, dockerfile string) []string {
	copied, err := prebuiltSources(filepath.Join(contextDir, filepath.FromSlash(dockerfile)), contextDir)
	if err != nil || len(copied) == 0 {
		return nil
	}
	if main, versioned := goMainPackage(contextDir); main {
		flags := ""
		if versioned {
			// The binary says which build it is: each revision's build ID.
			flags = ` -ldflags "-s -w -X main.version=${CUTOVER_BUILD_ID}"`
		}
		var cmds []string
		for _, src := range copied {
			cmds = append(cmds, "CGO_ENABLED=0 go build -trimpath"+flags+" -o "+src+" .")
		}
		m.notef("%s: the Dockerfile copies %s, built on the host before the image: build.commands runs `go build` for it (a Go main package is in %s)", name, strings.Join(copied, ", "), m.rel(contextDir, m.dir))
		return cmds
	}
	if b, err := os.ReadFile(filepath.Join(contextDir, "package.json")); err == nil {
		var pkg struct{ Scripts map[string]string }
		if json.Unmarshal(b, &pkg) == nil && pkg.Scripts["build"] != "" {
			m.notef("%s: the Dockerfile copies %s, built on the host before the image: build.commands runs the package.json build script", name, strings.Join(copied, ", "))
			return []string{"npm ci", "npm run build"}
		}
	}
	m.notef("%s: the Dockerfile copies %s, which the repository does not build by itself: add build.commands that produce it", name, strings.Join(copied, ", "))
	return nil
}

// prebuiltSources returns the sources of the Dockerfile's COPY and ADD instructions
// that are build outputs. A multi-stage COPY --from builds inside Docker and is left out.
func prebuiltSources(dockerfile, contextDir string) ([]string, error) {
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ins := range instructions(b) {
		fields := strings.Fields(ins)
		if len(fields) < 3 {
			continue
		}
		if op := strings.ToUpper(fields[0]); op != "COPY" && op != "ADD" {
			continue
		}
		args := fields[1:]
		if rest := strings.TrimSpace(ins[len(fields[0]):]); strings.HasPrefix(rest, "[") {
			args = nil
			if json.Unmarshal([]byte(rest), &args) != nil {
				continue
			}
		}
		var srcs []string
		from := false
		for _, a := range args {
			if strings.HasPrefix(a, "--") {
				from = from || strings.HasPrefix(a, "--from")
				continue
			}
			srcs = append(srcs, a)
		}
		if from || len(srcs) < 2 {
			continue
		}
		for _, src := range srcs[:len(srcs)-1] {
			src = path.Clean(strings.TrimPrefix(src, "./"))
			if strings.ContainsAny(src, "*?[$") || strings.Contains(src, "://") || src == "." || strings.HasPrefix(src, "..") {
				continue
			}
			first, _, _ := strings.Cut(src, "/")
			_, statErr := os.Stat(filepath.Join(contextDir, filepath.FromSlash(src)))
			if buildOutputDirs[first] && first != src || os.IsNotExist(statErr) {
				out = append(out, src)
			}
		}
	}
	return out, nil
}

// instructions splits a Dockerfile into instructions: comments dropped, lines
// continued with a trailing backslash joined.
func instructions(b []byte) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

var versionVarRe = regexp.MustCompile(`(?m)^var version\b`)

// goMainPackage says whether dir holds a Go main package (a non-test .go file
// declaring package main), and whether it declares a package-level version
// variable for the linker to set.
func goMainPackage(dir string) (main, versioned bool) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if l := strings.TrimSpace(line); strings.HasPrefix(l, "package ") {
				if l == "package main" {
					main = true
					versioned = versioned || versionVarRe.Match(b)
				}
				break
			}
		}
	}
	return main, versioned
}

// sourceMentions returns the first file under dir (sources of a web front end:
// .js, .ts, .html, ...) that contains needle, or "" when none does. It reads
// at most a few thousand files of at most 1 MiB each, and skips dependencies.
func sourceMentions(dir, needle string) string {
	found, budget := "", 5000
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", ".git", "vendor", "bin":
				return filepath.SkipDir
			}
			return nil
		}
		if budget--; budget < 0 {
			return filepath.SkipAll
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".js", ".mjs", ".jsx", ".ts", ".tsx", ".vue", ".svelte", ".html":
		default:
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > 1<<20 {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(needle)) {
			found = p
		}
		return nil
	})
	return found
}

// firstSegment returns "/api" for "/api/health", or "" for "/" and "/health".
func firstSegment(p string) string {
	seg, rest, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if !ok || seg == "" || rest == "" {
		return ""
	}
	return "/" + seg
}

func describeFile(path, base string) string {
	if r, err := filepath.Rel(base, path); err == nil {
		return filepath.ToSlash(r)
	}
	return fmt.Sprint(path)
}

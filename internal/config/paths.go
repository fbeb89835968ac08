package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Every path cutover.yaml names (build contexts, Dockerfiles, compose
// files, test reports, the secrets file) must resolve inside the
// workspace: the checkout a pipeline runs in, or the directory of
// cutover.yaml when it is read on its own. A path may not be absolute,
// climb out with "..", or go through a symbolic link that leads out; so a
// commit cannot make cutover read, build or run what lies outside it.

// LoadWithin is Load for a cutover.yaml inside root (a workspace): every
// path it names must resolve inside root, not only inside its directory.
func LoadWithin(path, root string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the configuration: %w", err)
	}
	return ParseWithin(path, filepath.Dir(path), root, data)
}

// ParseWithin is ParseDir with root as the workspace the paths are confined to.
func ParseWithin(filename, baseDir, root string, data []byte) (*Config, error) {
	return parse(filename, baseDir, root, data)
}

// Root is the directory every path of the configuration must stay in: the
// workspace given to LoadWithin, else the directory of cutover.yaml.
func (c *Config) Root() string {
	if c.root != "" {
		return c.root
	}
	return c.Dir()
}

// Confined checks that path (absolute, or relative to the current
// directory) resolves inside root, following the symbolic links of the
// part that exists. The error says where it leads.
func Confined(root, path string) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	rootReal, err := realPath(root)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if !inside(rootReal, abs) && !inside(root, abs) {
		return fmt.Errorf("%s is outside the workspace %s", path, root)
	}
	real, err := realPath(abs)
	if err != nil {
		return err
	}
	if !inside(rootReal, real) {
		return fmt.Errorf("%s leads through a symbolic link to %s, outside the workspace", path, real)
	}
	return nil
}

// realPath resolves the symbolic links of the longest existing prefix of
// path and appends the rest, which does not exist yet.
func realPath(path string) (string, error) {
	path = filepath.Clean(path)
	var rest []string
	for {
		real, err := filepath.EvalSymlinks(path)
		if err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(path)
		if parent == path {
			return filepath.Join(append([]string{path}, rest...)...), nil
		}
		rest = append([]string{filepath.Base(path)}, rest...)
		path = parent
	}
}

func inside(root, path string) bool {
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(path))
	return err == nil && filepath.IsLocal(rel) || rel == "."
}

// paths reports every path of the configuration that leaves the workspace.
// (Build contexts and Dockerfiles are checked by confineBuild, before their
// existence.)
func (v *validator) paths() {
	if v.c.Pipeline == nil {
		return
	}
	if s := v.c.Pipeline.Secrets; s != nil && s.File != "" {
		v.confine("pipeline.secrets.file", v.c.Dir(), s.File)
	}
	for i, st := range v.c.Pipeline.Stages {
		for j, a := range st.Actions {
			ap := fmt.Sprintf("pipeline.stages[%d].actions[%d]", i, j)
			if a.Compose != "" {
				v.confine(ap+".compose", v.c.Dir(), a.Compose)
			}
			for k, r := range a.Reports {
				v.confine(fmt.Sprintf("%s.reports[%d]", ap, k), v.c.Dir(), r)
			}
		}
	}
}

// confineBuild checks a service's build context and Dockerfile (p is
// services.NAME.build) and reports whether both stay inside.
func (v *validator) confineBuild(p string, b *Build) bool {
	return v.confine(p+".context", v.c.Dir(), b.Context) &&
		v.confine(p+".dockerfile", filepath.Join(v.c.Dir(), filepath.FromSlash(b.Context)), b.Dockerfile)
}

// confine checks one path of field, relative to base: lexically always,
// and through the filesystem when the configuration has a directory.
func (v *validator) confine(field, base, p string) bool {
	if p == "" {
		return true
	}
	const what = "must stay inside the workspace (write a path relative to cutover.yaml, without .. out of the repository)"
	if filepath.IsAbs(p) || strings.HasPrefix(p, "/") {
		v.add(field, "%q is an absolute path: it %s", p, what)
		return false
	}
	root := v.c.Root()
	if root == "" { // from bytes only: the path may not climb above cutover.yaml
		if !filepath.IsLocal(filepath.Clean(filepath.Join(base, filepath.FromSlash(p)))) && filepath.Clean(filepath.Join(base, p)) != "." {
			v.add(field, "%q climbs out of the directory of cutover.yaml: it %s", p, what)
			return false
		}
		return true
	}
	abs := filepath.Join(base, filepath.FromSlash(p))
	if !inside(root, abs) {
		v.add(field, "%q resolves to %s, outside the workspace %s: it %s", p, abs, root, what)
		return false
	}
	if err := Confined(root, abs); err != nil {
		v.add(field, "%q: %v; it %s", p, err, what)
		return false
	}
	return true
}

package pipeline

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cutoverdev/cutover/internal/config"
)

// Secrets are the values named in pipeline.secrets, loaded at run time.
// They reach actions only as environment variables, and Mask hides them in
// every log line.
type Secrets struct {
	values map[string]string
	masker *strings.Replacer
}

// LoadSecrets reads each named secret from the secrets file (KEY=VALUE
// lines, # comments), then from the environment. A missing one is an error
// that names it and says where to put it.
func LoadSecrets(cfg *config.Config, p *config.Pipeline, getenv func(string) string) (*Secrets, error) {
	s := &Secrets{values: map[string]string{}}
	if p.Secrets == nil {
		s.masker = strings.NewReplacer()
		return s, nil
	}
	fromFile := map[string]string{}
	if p.Secrets.File != "" {
		path := p.Secrets.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(cfg.Dir(), path)
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("pipeline.secrets.file: %v (create it with KEY=VALUE lines, or remove the setting)", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("%s:%d: not KEY=VALUE (the value is not shown)", path, n)
			}
			fromFile[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
	}
	var missing []string
	for _, name := range p.Secrets.Names {
		v, ok := fromFile[name]
		if !ok {
			v = getenv(name)
		}
		if v == "" {
			missing = append(missing, name)
			continue
		}
		s.values[name] = v
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("pipeline.secrets: %s not set (put it in the secrets file or the environment of cutover)", strings.Join(missing, ", "))
	}
	// Longest first, so a secret that contains another is masked whole.
	vals := make([]string, 0, len(s.values))
	for _, v := range s.values {
		vals = append(vals, v)
	}
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	var pairs []string
	for _, v := range vals {
		if len(v) >= 3 {
			pairs = append(pairs, v, "***")
		}
	}
	s.masker = strings.NewReplacer(pairs...)
	return s, nil
}

// Mask replaces every secret value in s with ***.
func (s *Secrets) Mask(line string) string { return s.masker.Replace(line) }

// Value returns a secret by name.
func (s *Secrets) Value(name string) string { return s.values[name] }

// Env returns NAME=value pairs for the actions' environment.
func (s *Secrets) Env() []string {
	out := make([]string, 0, len(s.values))
	for k, v := range s.values {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

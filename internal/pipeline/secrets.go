package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/mask"
)

// Secrets are the values named in pipeline.secrets, loaded at run time.
// They reach actions only as environment variables, and Mask hides them in
// every log line.
type Secrets struct {
	values map[string]string
	masker *strings.Replacer // mask.New of the values
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
		path := filepath.Join(cfg.Dir(), p.Secrets.File)
		if err := config.Confined(cfg.Root(), path); err != nil {
			return nil, fmt.Errorf("pipeline.secrets.file: %v (it must be inside the workspace)", err)
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
	s.masker = mask.New(s.values)
	return s, nil
}

// MaskJSON masks every string (and object key) of a JSON document, for
// state that is stored or served whole: stages with their summaries,
// JUnit names and outputs, variables, approval evidence. A document that
// is not JSON is masked as text.
func (s *Secrets) MaskJSON(raw []byte) []byte {
	if s == nil || len(raw) == 0 {
		return raw
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return []byte(s.Mask(string(raw)))
	}
	out, err := json.Marshal(s.maskValue(doc))
	if err != nil {
		return []byte(s.Mask(string(raw)))
	}
	return out
}

func (s *Secrets) maskValue(v any) any {
	switch x := v.(type) {
	case string:
		return s.Mask(x)
	case []any:
		for i := range x {
			x[i] = s.maskValue(x[i])
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[s.Mask(k)] = s.maskValue(e)
		}
		return out
	}
	return v
}

// Mask replaces every secret value in s, in any of the forms mask.New
// knows, with ***. A nil Secrets masks nothing.
func (s *Secrets) Mask(line string) string {
	if s == nil || s.masker == nil {
		return line
	}
	return s.masker.Replace(line)
}

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

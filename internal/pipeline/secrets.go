package pipeline

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
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
	s.masker = newMasker(s.values)
	return s, nil
}

// minMasked is the shortest text masked: a shorter secret (or line of
// one) would mask ordinary words.
const minMasked = 3

// newMasker replaces, longest first (a secret containing another is masked
// whole), every form a secret's value can take in output: the value; each
// line of a multi-line value; its base64 (standard and URL alphabets, with
// and without padding, of the value alone or followed by a newline as
// `echo $S | base64` writes it, and the part of it that is the same
// wherever the value starts inside a longer encoded text); its URL
// encodings (query and path) and its JSON string form.
func newMasker(values map[string]string) *strings.Replacer {
	forms := map[string]bool{}
	add := func(f string) {
		if len(f) >= minMasked {
			forms[f] = true
		}
	}
	for _, v := range values {
		if len(v) < minMasked {
			continue
		}
		for _, x := range []string{v, strings.TrimSpace(v)} {
			add(x)
			for l := range strings.SplitSeq(x, "\n") {
				add(strings.TrimSpace(l))
			}
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				add(enc.EncodeToString([]byte(x)))
				add(enc.EncodeToString([]byte(x + "\n")))
			}
			// Inside a longer encoded text the value starts at byte offset
			// 0, 1 or 2 of a 3-byte group; the groups made of its bytes
			// only encode the same whatever surrounds them.
			for skip := 0; skip < 3; skip++ {
				if rest := x[skip:]; len(rest)/3 >= 2 {
					whole := []byte(rest[:len(rest)/3*3])
					add(base64.RawStdEncoding.EncodeToString(whole))
					add(base64.RawURLEncoding.EncodeToString(whole))
				}
			}
			add(url.QueryEscape(x))
			add(url.PathEscape(x))
			if j, err := json.Marshal(x); err == nil {
				add(string(j[1 : len(j)-1]))
			}
		}
	}
	all := make([]string, 0, len(forms))
	for f := range forms {
		all = append(all, f)
	}
	sort.Slice(all, func(i, j int) bool {
		if len(all[i]) != len(all[j]) {
			return len(all[i]) > len(all[j])
		}
		return all[i] < all[j]
	})
	pairs := make([]string, 0, 2*len(all))
	for _, f := range all {
		pairs = append(pairs, f, "***")
	}
	return strings.NewReplacer(pairs...)
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

// Mask replaces every secret value in s, in any of the forms newMasker
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

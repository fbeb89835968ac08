// Package mask hides secret values in text cutover records or shows: a
// pipeline's log lines, a task's log lines quoted in a failure or in an
// approval's evidence, an engine's error.
package mask

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// MinMasked is the shortest text masked: a shorter secret (or line of
// one) would mask ordinary words.
const MinMasked = 3

// New replaces, longest first (a secret containing another is masked
// whole), every form a secret's value can take in output: the value; each
// line of a multi-line value; its base64 (standard and URL alphabets, with
// and without padding, of the value alone or followed by a newline as
// `echo $S | base64` writes it, and the part of it that is the same
// wherever the value starts inside a longer encoded text); its URL
// encodings (query and path), its JSON string form and its Go-quoted form
// (how the Docker engine's errors quote a variable).
func New(values map[string]string) *strings.Replacer {
	forms := map[string]bool{}
	add := func(f string) {
		if len(f) >= MinMasked {
			forms[f] = true
		}
	}
	for _, v := range values {
		if len(v) < MinMasked {
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
			q := strconv.Quote(x) // as an error (the Docker engine's) quotes a variable
			add(q[1 : len(q)-1])
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

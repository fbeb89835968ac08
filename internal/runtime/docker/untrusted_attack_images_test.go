package docker

import (
	"fmt"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/image"
)

// The images a Dockerfile reads, as the classic builder finds them: a
// COPY --from names a stage only once the stage is built (a later stage of
// that name, or the stage it is in, is an image to the builder: a prefix of
// an image's ID, perhaps), by its index, or by its name in any case; an
// ONBUILD trigger runs in a later stage, by which time its own stage is
// built; a variable in --from is refused.
func TestAttackImagesADockerfileReads(t *testing.T) {
	for _, tc := range []struct{ df, want string }{
		{"FROM scratch\nCOPY --from=abc /a /b\nFROM scratch AS abc\n", "[2 COPY --from=abc]"},
		{"FROM scratch AS abc\nCOPY --from=abc /a /b\n", "[2 COPY --from=abc]"},
		{"FROM scratch AS a\nFROM scratch\nCOPY --from=A /x /y\nCOPY --from=0 /x /y\n", "[]"},
		{"FROM scratch AS a\nONBUILD COPY --from=a /x /y\nONBUILD COPY --from=b /x /y\nFROM a AS b\n", "[3 ONBUILD COPY --from=b]"},
		{"FROM scratch\nONBUILD COPY <<EOF /x\nhi\nEOF\nONBUILD COPY --from=img <<EOF /y\nhi\nEOF\n", "[5 ONBUILD COPY --from=img]"},
		{"FROM alpine AS base\nFROM base\nFROM Base\nFROM cutover/x-y:latest AS c\n", "[1 FROM alpine 4 FROM cutover/x-y:latest]"},
		{"ARG B=cutover/x-y\nFROM ${B}:1\nFROM scratch\nCOPY --chown=1:1 --from=dee /a /b\n", "[2 FROM cutover/x-y:1 4 COPY --from=dee]"},
		{"ARG X=img\nFROM scratch\nCOPY --from=${X} /a /b\n", "line 3: COPY --from=${X} names its source with a variable"},
		{"FROM scratch\nONBUILD COPY --from=$X /a /b\n", "line 2: ONBUILD COPY --from=$X names its source with a variable"},
		{"FROM scratch\nONBUILD COPY --from=a --from=b /a /b\n", "line 2: ONBUILD COPY --from=a --from=b has more than one --from"},
	} {
		p, err := parseDockerfile([]byte(tc.df))
		if err != nil {
			t.Fatalf("%q: %v", tc.df, err)
		}
		uses, err := imageUses(p.ast.Children, p, nil)
		got := []string{}
		for _, u := range uses {
			got = append(got, fmt.Sprint(u.line, " ", u))
		}
		if err != nil && !strings.Contains(err.Error(), tc.want) || err == nil && fmt.Sprint(got) != tc.want {
			t.Errorf("%q: %v (%v), want %s", tc.df, got, err, tc.want)
		}
	}
}

// The engine builds what was checked: each image the Dockerfile reads is
// named by the ID the check found, flags and stage names kept.
func TestAttackCanonicalPinsTheImagesChecked(t *testing.T) {
	id := "sha256:" + strings.Repeat("ab", 32)
	df := "FROM --platform=linux/amd64 alpine:3 AS base\nCOPY --chown=1:1 --from=cutover/x-y:1 [\"/a b\", \"/c\"]\nFROM base\nCOPY --from=other /x /y\n"
	p, err := parseDockerfile([]byte(df))
	if err != nil {
		t.Fatal(err)
	}
	got, err := canonicalPinned(p, map[int]string{0: id, 1: id, 3: id})
	want := "FROM --platform=linux/amd64 " + id + " AS base\nCOPY --chown=1:1 --from=" + id + " [\"/a b\",\"/c\"]\nFROM base\nCOPY --from=" + id + " /x /y\n"
	if err != nil || string(got) != want {
		t.Errorf("canonicalPinned: %q (%v), want %q", got, err, want)
	}
}

// The engine looks a name up among its tags and digests first, then takes
// it for a prefix of an image's ID: an image found under none of its names
// was found by its ID.
func TestAttackImageNamedByItsID(t *testing.T) {
	d := "sha256:" + strings.Repeat("cd", 32)
	img := image.InspectResponse{ID: "sha256:" + strings.Repeat("ab", 32), RepoTags: []string{"alpine:latest", "team/base:1"}, RepoDigests: []string{"alpine@" + d}}
	for ref, want := range map[string]bool{
		"alpine": true, "docker.io/library/alpine:latest": true, "team/base:1": true, "alpine@" + d: true, "alpine:3@" + d: true,
		"abababab": false, "ab": false, img.ID: false, strings.Repeat("ab", 32): false, "team/base@" + d: false, "alpine:3": false,
	} {
		if got := namedBy(ref, img); got != want {
			t.Errorf("namedBy(%s) = %v, want %v", ref, got, want)
		}
	}
}

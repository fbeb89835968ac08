package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFromComposeGolden drafts cutover.yaml from each testdata/compose/NAME/docker-compose.yml,
// compares it and the notes with golden files, and checks that the draft parses and
// validates, build contexts included, as it would when written next to the compose file.
func TestFromComposeGolden(t *testing.T) {
	t.Setenv("COMPOSE_PROJECT_NAME", "") // the directory name, not the caller's setting
	dirs, _ := filepath.Glob("testdata/compose/*")
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			c, notes, err := FromCompose(t.Context(), filepath.Join(dir, "docker-compose.yml"))
			if filepath.Base(dir) == "noports" {
				if err == nil || !strings.Contains(err.Error(), "has no service cutover can run") {
					t.Fatalf("err = %v, want no usable service", err)
				}
				golden(t, filepath.Join(dir, "notes.golden"), []byte(strings.Join(notes, "\n")+"\n"))
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, "cutover.golden.yaml"), out)
			golden(t, filepath.Join(dir, "notes.golden"), []byte(strings.Join(notes, "\n")+"\n"))

			parsed, err := ParseDir("cutover.yaml", dir, out)
			if err != nil {
				t.Fatalf("the draft does not validate:\n%v\n%s", err, out)
			}
			for _, s := range parsed.Services {
				for k := range s.Env {
					if secretKeyRe.MatchString(k) {
						t.Errorf("secret-like variable %s was copied", k)
					}
				}
				if strings.Contains(string(out), "hunter2") || strings.Contains(string(out), "do-not-copy-me") {
					t.Error("a secret value was written")
				}
			}
		})
	}
}

func TestFromComposeErrors(t *testing.T) {
	dir := t.TempDir()
	_, _, err := FromCompose(t.Context(), filepath.Join(dir, "docker-compose.yml"))
	if err == nil {
		t.Fatal("missing compose file: no error")
	}
	t.Log(err)

	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("services:\n  web:\n    ports: [\"abc\"]\n    image: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = FromCompose(t.Context(), bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("invalid compose file: err = %v, want one naming the file", err)
	}
	t.Log(err)
}

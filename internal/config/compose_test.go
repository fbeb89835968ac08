package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
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

// An unset ${VAR} of the compose file is a note of the draft, not
// compose-go's raw logrus warning ("Defaulting to a blank string"); a
// reference with a default, or the $$ escape, is not unset.
func TestFromComposeNotesUnsetVariablesQuietly(t *testing.T) {
	dir := t.TempDir()
	compose := `services:
  web:
    image: shop/web:1
    ports: ["8000:8000"]
    environment:
      DB_PASSWORD: "${CUTOVER_TEST_UNSET_PW}"
      GREETING: "${CUTOVER_TEST_UNSET_GREETING:-hello}"
      PRICE: "$$5"
      REGION: "$CUTOVER_TEST_UNSET_REGION"
`
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	std := logrus.StandardLogger()
	out := std.Out
	std.SetOutput(&logged)
	defer std.SetOutput(out)
	c, notes, err := FromCompose(t.Context(), filepath.Join(dir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if logged.Len() > 0 {
		t.Errorf("compose-go logged: %s", logged.String())
	}
	all := strings.Join(notes, "\n")
	for _, want := range []string{"variable CUTOVER_TEST_UNSET_PW is not set", "variable CUTOVER_TEST_UNSET_REGION is not set"} {
		if !strings.Contains(all, want) {
			t.Errorf("notes lack %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "CUTOVER_TEST_UNSET_GREETING") {
		t.Errorf("a variable with a default is noted as unset:\n%s", all)
	}
	if got := c.Services["web"].Env; got["GREETING"] != "hello" || got["PRICE"] != "$5" {
		t.Errorf("env: %v", got)
	}
}

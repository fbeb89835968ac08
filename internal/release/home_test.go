package release_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/release"
)

// The default state directory under a HOME that cannot hold it names
// itself and both ways to choose another; a directory that may not be
// created in is refused before anything tries to (a user, not root, for
// whom access(2) always allows writing).
func TestHomeDirRefusesOneItCannotUse(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CUTOVER_HOME", "")
	t.Setenv("HOME", file)
	want := "the default state directory " + file + "/.local/share/cutover: cannot be created: " + file +
		" is not a directory (set CUTOVER_HOME, or pass --home)"
	if _, err := release.HomeDir(""); err == nil || err.Error() != want {
		t.Fatalf("HomeDir with HOME a file: %v, want %q", err, want)
	}
	if got, err := release.HomeDir(filepath.Join(dir, "a", "b")); err != nil || got != filepath.Join(dir, "a", "b") {
		t.Fatalf("HomeDir of a directory to create: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Fatalf("HomeDir created something: %v", err)
	}
	if os.Geteuid() == 0 {
		return
	}
	locked := filepath.Join(dir, "locked")
	if err := os.Mkdir(locked, 0o500); err != nil {
		t.Fatal(err)
	}
	if _, err := release.HomeDir(filepath.Join(locked, "home")); err == nil ||
		!strings.Contains(err.Error(), "--home "+locked+"/home: cannot be created: this user may not create directories in "+locked) {
		t.Fatalf("HomeDir under a read-only directory: %v", err)
	}
}

// A state directory that is a link to nothing (its target removed) cannot
// be created either: creating it would fail on the link ("file exists").
func TestHomeDirRefusesADanglingLink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "home")
	if err := os.Symlink(filepath.Join(dir, "gone"), link); err != nil {
		t.Fatal(err)
	}
	for _, home := range []string{link, filepath.Join(link, "sub")} {
		_, err := release.HomeDir(home)
		if err == nil || !strings.Contains(err.Error(), "cannot be created: "+link+" is a link to "+filepath.Join(dir, "gone")+", which does not exist") {
			t.Errorf("HomeDir(%s): %v", home, err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "gone"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got, err := release.HomeDir(link); err != nil || got != link {
		t.Fatalf("HomeDir of a link to a directory: %q %v", got, err)
	}
}

package secretstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestSetThenLookupKeepsValuesInAPrivateFile(t *testing.T) {
	home := t.TempDir()
	s := Open(home, "shop")
	if v, err := s.Values("staging"); err != nil || len(v) != 0 {
		t.Fatalf("values before any set: %v, %v", v, err)
	}
	multiline := "-----BEGIN KEY-----\nabc=\n-----END KEY-----"
	for _, kv := range [][2]string{{"DB_PASSWORD", "hunter2"}, {"TLS_KEY", multiline}, {"DB_PASSWORD", "hunter3"}} {
		if _, err := s.Set("staging", kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Lookup("staging", []string{"TLS_KEY", "DB_PASSWORD"})
	if err != nil || got["DB_PASSWORD"] != "hunter3" || got["TLS_KEY"] != multiline || len(got) != 2 {
		t.Fatalf("lookup: %q, %v", got, err)
	}
	if v, _ := s.Values("production"); len(v) != 0 {
		t.Errorf("production has staging's values: %q", v)
	}
	fi, err := os.Stat(s.File("staging"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v, %v", fi.Mode(), err)
	}
	di, err := os.Stat(filepath.Dir(s.File("staging")))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode: %v, %v", di.Mode(), err)
	}
	if removed, err := s.Unset("staging", "DB_PASSWORD"); err != nil || !removed {
		t.Fatalf("unset: %v, %v", removed, err)
	}
	if removed, err := s.Unset("staging", "DB_PASSWORD"); err != nil || removed {
		t.Fatalf("second unset: %v, %v", removed, err)
	}
	_, err = s.Lookup("staging", []string{"DB_PASSWORD", "API_KEY", "TLS_KEY"})
	var missing MissingError
	if !errors.As(err, &missing) || strings.Join(missing.Names, ",") != "API_KEY,DB_PASSWORD" ||
		!strings.Contains(err.Error(), "cutover secrets set staging API_KEY; cutover secrets set staging DB_PASSWORD") {
		t.Fatalf("lookup of unset names: %v", err)
	}
}

// A value file others may read is refused, as ssh refuses such a key: a
// deploy would otherwise go on handing out values that have leaked.
func TestAttackAFileOthersMayReadIsRefused(t *testing.T) {
	s := Open(t.TempDir(), "shop")
	if _, err := s.Set("production", "DB_PASSWORD", "hunter2"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.File("production"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.Lookup("production", []string{"DB_PASSWORD"})
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+s.File("production")) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("lookup in a file of mode 0644: %v", err)
	}
	if _, err := s.Set("production", "API_KEY", "k"); err == nil {
		t.Fatal("set into a file of mode 0644 was accepted")
	}
}

// Names reach a path and a container's environment: an environment or a
// name that could leave the store's directory, or is no variable name, is
// refused before any file is touched.
func TestAttackNamesThatLeaveTheDirectoryAreRefused(t *testing.T) {
	home := t.TempDir()
	s := Open(home, "shop")
	for _, c := range [][2]string{{"../../etc", "X"}, {"..", "X"}, {"staging/../x", "X"}, {"", "X"}, {"Staging", "X"},
		{"staging", "../x"}, {"staging", "A=B"}, {"staging", "1X"}, {"staging", ""}, {"staging", "A B"}} {
		if _, err := s.Set(c[0], c[1], "v"); err == nil {
			t.Errorf("set %q %q was accepted", c[0], c[1])
		}
	}
	entries, _ := os.ReadDir(home)
	if len(entries) != 0 {
		t.Errorf("refused names created %v", entries)
	}
	if _, err := s.Set("staging", "X", ""); err == nil || !strings.Contains(err.Error(), "unset staging X") {
		t.Errorf("an empty value: %v", err)
	}
}

// A damaged file's error names the file and what to do, never its bytes
// (they may be a value).
func TestADamagedFileSaysWhatToDoWithoutItsContent(t *testing.T) {
	s := Open(t.TempDir(), "shop")
	if _, err := s.Set("staging", "DB_PASSWORD", "hunter2"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.File("staging"), []byte(`{"DB_PASSWORD": "hunter2`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Values("staging")
	if err == nil || !strings.Contains(err.Error(), s.File("staging")+" is damaged") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("damaged file: %v", err)
	}
}

// Two commands setting values at once both keep theirs.
func TestConcurrentSetsKeepEveryValue(t *testing.T) {
	s := Open(t.TempDir(), "shop")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if _, err := s.Set("staging", fmt.Sprintf("K%d", i), fmt.Sprint(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	v, err := s.Values("staging")
	if err != nil || len(v) != 16 {
		t.Fatalf("after 16 concurrent sets: %d values, %v", len(v), err)
	}
}

func TestMaskHidesEachValueItsLinesAndItsJSONForm(t *testing.T) {
	values := map[string]string{"A": "s3cr\"et", "B": "line-one\nline-two", "C": "x"}
	in := `pw=s3cr"et json="s3cr\"et" first=line-one second=line-two one letter x`
	got := Mask(in, values)
	for _, leak := range []string{`s3cr"et`, `s3cr\"et`, "line-one", "line-two"} {
		if strings.Contains(got, leak) {
			t.Errorf("Mask(%q) = %q: still holds %q", in, got, leak)
		}
	}
	if !strings.Contains(got, "one letter x") {
		t.Errorf("Mask masked a one-letter value: %q", got)
	}
}

// A set killed mid-write (kill -9) leaves its temporary file, values and
// all: the next change removes it, so an unset value does not stay on disk.
func TestAKilledWritersTemporaryFileIsRemovedByTheNextChange(t *testing.T) {
	s := Open(t.TempDir(), "shop")
	if _, err := s.Set("staging", "DB_PASSWORD", "hunter2"); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(filepath.Dir(s.File("staging")), ".staging.json.123456")
	if err := os.WriteFile(stale, []byte(`{"DB_PASSWORD": "hunter2"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(filepath.Dir(s.File("staging")), ".production.json.123456")
	if err := os.WriteFile(other, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unset("staging", "DB_PASSWORD"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the killed writer's temporary file is still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another environment's temporary file was removed: %v", err)
	}
}

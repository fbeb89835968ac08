package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// What a command leaves for the engine to read is hostile input: a 1 TiB
// sparse report, a link to a host file, a FIFO that never ends, a device.
func TestReadBoundedRefusesHostileFiles(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "report.xml")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	f.Close()
	link := filepath.Join(dir, "export")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ok := filepath.Join(dir, "ok.xml")
	if err := os.WriteFile(ok, []byte("<testsuite/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		huge:        "over the limit",
		link:        "not a regular file",
		fifo:        "not a regular file",
		"/dev/zero": "not a regular file",
	} {
		if _, err := readBounded(path, maxReportBytes); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
	if data, err := readBounded(ok, maxReportBytes); err != nil || string(data) != "<testsuite/>" {
		t.Fatalf("a plain report: %q %v", data, err)
	}
}

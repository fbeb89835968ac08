package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `cutover dashboard` opened the browser with the one-time login link as a
// process argument, which every local user can read in /proc/PID/cmdline
// (and use to log in first). The opener now gets a page of the user's own
// (0600, in a 0700 directory) that redirects to the link.
func TestAttackDashboardLinkIsReadableInProcessArguments(t *testing.T) {
	t.Setenv("CUTOVER_HOME", t.TempDir())
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, ".cache"))
	bin := t.TempDir()
	got := filepath.Join(bin, "opened")
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte("#!/bin/sh\nprintf '%s' \"$1\" > "+got+".tmp && mv "+got+".tmp "+got+"\nsleep 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("DISPLAY", ":0")
	code, out, errb := run(t, "", "dashboard", "--addr", "127.0.0.1:1")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errb)
	}
	link := regexp.MustCompile(`cutover-link_[A-Z2-7]{52}`).FindString(out)
	if link == "" || !strings.Contains(out, "Opened in your browser") {
		t.Fatalf("no link opened in the output: %s", out)
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(link)) {
				t.Fatalf("the login link is in the arguments of a process (%s): %q", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
			}
		}
	}
	arg, err := os.ReadFile(got)
	if err != nil {
		t.Fatalf("the opener did not run: %v", err)
	}
	page := strings.TrimPrefix(string(arg), "file://")
	if !strings.HasPrefix(page, home+"/") {
		t.Fatalf("the opener got %q, want a page in the user's own directory", arg)
	}
	fi, err := os.Lstat(page)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || int(fi.Sys().(*syscall.Stat_t).Uid) != os.Getuid() {
		t.Fatalf("the page %s: %v %v; want a regular file 0600 of this user", page, fi, err)
	}
	di, err := os.Lstat(filepath.Dir(page))
	if err != nil || !di.IsDir() || di.Mode().Perm() != 0o700 || int(di.Sys().(*syscall.Stat_t).Uid) != os.Getuid() {
		t.Fatalf("the page's directory %s: %v %v; want a directory 0700 of this user", filepath.Dir(page), di, err)
	}
	body, err := os.ReadFile(page)
	if err != nil || !bytes.Contains(body, []byte(`http-equiv="refresh"`)) || !bytes.Contains(body, []byte("link="+link)) {
		t.Fatalf("the page does not redirect to the link: %v %s", err, body)
	}

	// A later run removes the pages of links that have expired.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(page, old, old); err != nil {
		t.Fatal(err)
	}
	os.Remove(got)
	if code, out, errb := run(t, "", "dashboard", "--addr", "127.0.0.1:1"); code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errb)
	}
	if _, err := os.Lstat(page); !os.IsNotExist(err) {
		t.Errorf("the expired link's page is still there: %v", err)
	}
}

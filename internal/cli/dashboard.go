package cli

import (
	"context"
	"fmt"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/dashboard"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/spf13/cobra"
)

const actionDashboardLink = "dashboard link"

func newDashboardCmd(g *globals) *cobra.Command {
	var addr string
	var noOpen bool
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Print, and open in a browser, a one-time login link to the daemon's web dashboard",
		Long: "Makes a login link for you, the machine's owner (admin role), to the dashboard that\n" +
			"`cutover serve` serves at --addr. The link works once and for 5 minutes; only its SHA-256\n" +
			"is stored. Others log in with an API token (`cutover token create NAME --role ROLE`).",
		Args: cobra.NoArgs,
		RunE: g.withStateHome(func(ctx context.Context, h *release.Home, _ []string) error {
			link, err := dashboard.NewLink(ctx, h.Store, auth.LocalUser(), addr, time.Now())
			if err := h.Record(ctx, "cutover dashboard", actionDashboardLink, addr, err); err != nil {
				return err
			}
			if !link.Answering {
				fmt.Fprintf(g.stderr, "cutover dashboard: no daemon answers at %s yet: start it with `cutover serve --addr %s` (the link works if it starts within 5 minutes)\n", addr, addr)
			}
			opened := !noOpen && openBrowser(link.URL)
			return g.print(link, func(w io.Writer) {
				fmt.Fprintf(w, "Dashboard login link (works once, until %s):\n  %s\n", link.Expires.Local().Format("15:04:05"), link.URL)
				if opened {
					fmt.Fprintln(w, "Opened in your browser.")
				}
			})
		}),
	}
	cmd.Flags().StringVar(&addr, "addr", defaultDaemonAddr, "the daemon's address (as given to cutover serve --addr)")
	cmd.Flags().BoolVar(&noOpen, "no-open", false, "only print the link; do not start a browser")
	return cmd
}

// openBrowser starts the desktop's browser on url where there is one (a
// graphical session and xdg-open), without waiting for it. The URL holds
// the login secret, and a process's arguments are readable by every local
// user (/proc/PID/cmdline), who could log in with it first: the browser is
// given a page of this user's own that redirects to url (linkPage), never
// url itself.
func openBrowser(url string) bool {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return false
	}
	path, err := exec.LookPath("xdg-open")
	if err != nil {
		return false
	}
	page, err := linkPage(url)
	if err != nil {
		return false
	}
	c := exec.Command(path, page)
	if c.Start() != nil {
		_ = os.Remove(page)
		return false
	}
	_ = c.Process.Release() // the browser outlives this command
	return true
}

// linkPage writes an HTML page that redirects to url into a directory of
// this user's own (dashboard-links in the user's cache directory, 0700; a
// file 0600), not the shared /tmp (a snap browser does not see the host's
// /tmp either), and returns its path. The browser reads it after this
// command ends, so it is left there; each run removes the pages of
// earlier runs whose links have expired (auth.LinkTTL).
func linkPage(url string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(base, "cutover", "dashboard-links")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() {
		return "", fmt.Errorf("%s is not a directory of this user's", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return "", err
		}
	}
	if old, err := filepath.Glob(filepath.Join(dir, "link-*.html")); err == nil {
		for _, p := range old {
			if fi, err := os.Lstat(p); err == nil && time.Since(fi.ModTime()) > auth.LinkTTL {
				_ = os.Remove(p)
			}
		}
	}
	f, err := os.CreateTemp(dir, "link-*.html") // 0600
	if err != nil {
		return "", err
	}
	u := html.EscapeString(url)
	_, err = fmt.Fprintf(f, "<!doctype html>\n<meta charset=\"utf-8\">\n<meta name=\"referrer\" content=\"no-referrer\">\n<meta http-equiv=\"refresh\" content=\"0;url=%s\">\n<title>cutover dashboard</title>\n<p><a href=\"%s\">Open the cutover dashboard</a></p>\n", u, u)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

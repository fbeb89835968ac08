package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8790", "the daemon's address (as `cutover serve --addr`)")
	cmd.Flags().BoolVar(&noOpen, "no-open", false, "only print the link; do not start a browser")
	return cmd
}

// openBrowser starts the desktop's browser on url where there is one (a
// graphical session and xdg-open), without waiting for it.
func openBrowser(url string) bool {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return false
	}
	path, err := exec.LookPath("xdg-open")
	if err != nil {
		return false
	}
	c := exec.Command(path, url)
	if c.Start() != nil {
		return false
	}
	_ = c.Process.Release() // the browser outlives this command
	return true
}

package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/release"
)

// progress renders deployment events: a JSON object per line with
// --output json; otherwise lines for people, and on a terminal a live
// status line (phase, traffic, health, alarm values, time left).
type progress struct {
	w         io.Writer
	notes     io.Writer // release.KindNote lines: stderr in either mode
	json      bool
	tty       bool
	live      bool // a status line is on screen
	traffic   map[string]int
	lastPlain time.Time
}

func newProgress(g *globals) *progress {
	p := &progress{json: g.json(), w: g.stderr, notes: g.stderr}
	if p.json {
		p.w = g.stdout
	}
	if f, ok := g.stderr.(*os.File); ok && !p.json {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) event(ev deploy.Event) {
	if ev.Kind == release.KindNote {
		p.endLive()
		fmt.Fprintln(p.notes, ev.Message)
		return
	}
	if p.json {
		_ = json.NewEncoder(p.w).Encode(ev)
		return
	}
	if ev.Traffic != nil {
		p.traffic = ev.Traffic
	}
	if ev.Kind == "progress" {
		line := p.statusLine(ev)
		if p.tty {
			fmt.Fprintf(p.w, "\r\033[K%s", line)
			p.live = true
			return
		}
		if time.Since(p.lastPlain) < 5*time.Second {
			return
		}
		p.lastPlain = time.Now()
		fmt.Fprintln(p.w, line)
		return
	}
	p.endLive()
	fmt.Fprintf(p.w, "%s %-22s %s\n", ev.Time.Format("15:04:05"), ev.Phase, ev.Message)
}

// endLive clears the live status line, if one is on screen.
func (p *progress) endLive() {
	if p.live {
		fmt.Fprint(p.w, "\r\033[K")
		p.live = false
	}
}

func (p *progress) statusLine(ev deploy.Event) string {
	parts := []string{ev.Time.Format("15:04:05"), ev.Phase, ev.Message}
	if ev.Steps > 0 {
		step := fmt.Sprintf("step %d/%d", ev.Step, ev.Steps)
		if p.tty { // a bar on a terminal: one mark per step reached
			step = "[" + strings.Repeat("#", ev.Step) + strings.Repeat(".", max(0, ev.Steps-ev.Step)) + "] " + step
		}
		parts = append(parts[:1], append([]string{step}, parts[1:]...)...)
	}
	if len(p.traffic) > 0 {
		parts = append(parts, trafficText(p.traffic))
	}
	if ev.Total > 0 {
		parts = append(parts, fmt.Sprintf("%d/%d healthy", ev.Healthy, ev.Total))
	}
	for _, a := range ev.Alarms {
		parts = append(parts, a.Value())
	}
	if ev.WaitLeft > 0 {
		parts = append(parts, ev.WaitLeft.String()+" left")
	}
	if ev.Left > 0 {
		parts = append(parts, "about "+ev.Left.String()+" left overall")
	}
	return strings.Join(parts, " · ")
}

// trafficText is a split by color: "blue 90%/green 10%".
func trafficText(traffic map[string]int) string {
	var t []string
	for _, c := range slices.Sorted(maps.Keys(traffic)) {
		t = append(t, fmt.Sprintf("%s %d%%", c, traffic[c]))
	}
	return strings.Join(t, "/")
}

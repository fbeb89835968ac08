package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/cutoverdev/cutover/internal/alarm"
	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
)

// pageNames are the pages; each is templates/NAME.html with the layout and
// the shared parts.
var pageNames = []string{"overview", "environment", "executions", "execution", "approval", "audit", "login", "error"}

// view is what every template gets: the session's identity and abilities
// (which buttons to show), and the page's Data. No page holds the session's
// action key (its forms get it from the browser's storage: live.js).
type view struct {
	Page       string
	Project    string
	LoggedIn   bool
	Who        auth.Identity
	CanDeploy  bool
	CanApprove bool
	IsAdmin    bool
	Flash      *flash
	Data       any
}

type loginView struct {
	Error string
	Link  string // a one-time link's secret to log in with (GET /login?link=)
}

type errorView struct {
	Code    int
	Status  string
	Message string
}

var funcs = template.FuncMap{
	"dur": func(d time.Duration) string {
		if d <= 0 {
			return "0s"
		}
		if d < time.Minute {
			return d.Round(100 * time.Millisecond).String()
		}
		return d.Round(time.Second).String()
	},
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"short": func(s string, n int) string {
		if len(s) <= n {
			return s
		}
		return s[:n]
	},
	"words": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	"cls":   func(s string) string { return strings.Join(strings.Fields(s), "_") },
	"phase": phaseWords,
	"pct":   func(f float64) string { return fmt.Sprintf("%.2f%%", f*100) },
	"secs": func(f float64) string {
		return (time.Duration(f * float64(time.Second))).Round(time.Millisecond).String()
	},
	"took": func(start, end *time.Time) string {
		if start == nil {
			return ""
		}
		if end == nil {
			return "running " + time.Since(*start).Round(time.Second).String()
		}
		return end.Sub(*start).Round(100 * time.Millisecond).String()
	},
	"alarmValue": alarmValue,
	"add":        func(a, b int) int { return a + b },
}

func parsePages() map[string]*template.Template {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/parts.html", "templates/"+name+".html"))
	}
	return pages
}

func (h *Handler) view(name string, s auth.Session, data any, withFlash bool) view {
	v := view{Page: name, Project: h.Config.Project, Data: data}
	if s.Secret != "" {
		v.LoggedIn, v.Who = true, s.Identity
		v.CanDeploy = s.Identity.Role.Allows(auth.RoleDeployer)
		v.CanApprove = s.Identity.Role.Allows(auth.RoleApprover)
		v.IsAdmin = s.Identity.Role.Allows(auth.RoleAdmin)
		if withFlash {
			v.Flash = h.flash.take(s)
		}
	}
	return v
}

// render writes a whole page; a template error is the server's fault, said
// plainly, never half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, name string, s auth.Session, data any) {
	var buf bytes.Buffer
	if err := h.pages[name].Execute(&buf, h.view(name, s, data, true)); err != nil {
		h.Log.Error("dashboard template", "page", name, "err", err)
		http.Error(w, "the dashboard could not render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fragment renders the live part of a page (its "live" template).
func (h *Handler) fragment(name string, s auth.Session, data any) ([]byte, error) {
	var buf bytes.Buffer
	err := h.pages[name].ExecuteTemplate(&buf, "live", h.view(name, s, data, false))
	return buf.Bytes(), err
}

// alarmValue says an alarm's threshold and latest value in its metric's unit.
func alarmValue(a alarm.Status) string {
	f := func(v float64) string { return fmt.Sprintf("%g", v) }
	switch a.Metric {
	case config.MetricP95Latency, config.MetricP99Latency:
		f = formatSeconds
	case config.MetricErrorRate:
		f = formatPercent
	}
	s := fmt.Sprintf("threshold %s, %d of %d", f(a.Threshold), a.M, a.N)
	if d, ok := a.Latest(); ok {
		if d.Missing {
			return s + ", last period: no requests"
		}
		return s + ", now " + f(d.Value)
	}
	return s + ", no period closed yet"
}

// phaseWords says a controller phase ("TerminationWait") in words
// ("termination wait").
func phaseWords(p string) string {
	var b strings.Builder
	for i, r := range p {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte(' ')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return strings.ReplaceAll(b.String(), "_", " ")
}

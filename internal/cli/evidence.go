package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/short"
	"github.com/cutoverdev/cutover/internal/store"
)

// printApprovals shows what each approval of an execution shows (or
// showed) its approver: the commit and its changed files, the images by
// digest, and the evidence of the environment it is promoted from; for a
// pending one, how to decide.
func printApprovals(w io.Writer, id string, approvals []store.Approval, now time.Time) {
	for _, a := range approvals {
		var ev struct {
			pipeline.Evidence
			Staging *release.StagingEvidence `json:"staging"`
		}
		_ = json.Unmarshal(a.Evidence, &ev)
		fmt.Fprintf(w, "\napproval %s/%s to deploy %s: %s", a.Stage, a.Action, orDash(ev.Environment), a.Status)
		switch {
		case a.Status == store.ApprovalPending:
			fmt.Fprintf(w, " (asked %s ago, expires in %s)\n", now.Sub(a.RequestedAt).Round(time.Second), a.Expires.Sub(now).Round(time.Second))
		case a.DecidedAt != nil:
			fmt.Fprintf(w, " by %s at %s%s\n", orDash(a.DecidedBy), a.DecidedAt.Local().Format("2006-01-02 15:04:05"), ifSet("  %q", a.Comment))
		default:
			fmt.Fprintln(w)
		}
		if ev.Commit != "" {
			fmt.Fprintf(w, "  commit   %.12s on %s%s: %s\n", ev.Commit, ev.Branch, ifSet(" by %s", short.Terminal(ev.Author)), short.Terminal(short.Line(ev.Message)))
		}
		fmt.Fprintf(w, "  changed  %d file(s)%s\n", len(ev.ChangedFiles), listed(ev.ChangedFiles, 10))
		for _, n := range slices.Sorted(maps.Keys(ev.Images)) {
			fmt.Fprintf(w, "  image    %-12s %s\n", n, ev.Images[n])
		}
		if p := ev.Promotion; p != nil {
			if p.Deployment != "" {
				fmt.Fprintf(w, "  promotes deployment %s of %s (revision %s)\n", p.Deployment, p.From, p.Revision)
			} else if p.Reason != "" {
				fmt.Fprintf(w, "  promotes nothing from %s: %s\n", p.From, p.Reason)
			}
		}
		printStaging(w, ev.Staging)
		if a.Status == store.ApprovalPending {
			fmt.Fprintf(w, "  decide:  cutover approve %s --comment \"...\"   or   cutover reject %s\n", id, id)
		}
	}
}

func printStaging(w io.Writer, s *release.StagingEvidence) {
	if s == nil || s.Environment == "" {
		return
	}
	fmt.Fprintf(w, "  %s when the approval was asked:\n", s.Environment)
	if s.Warning != "" {
		fmt.Fprintf(w, "    NOTE: %s\n", s.Warning)
	}
	if len(s.LoadBalancer) == 0 {
		fmt.Fprintln(w, "    load balancer: no figures (the proxy did not answer, or no traffic yet)")
	}
	for _, g := range s.LoadBalancer {
		fmt.Fprintf(w, "    %-32s %6d requests  p95 %-8s errors %5.2f%%  targets %d healthy, %d unhealthy\n",
			g.Group, g.Requests, time.Duration(g.P95*float64(time.Second)).Round(time.Millisecond), 100*g.ErrorRate, g.Healthy, g.Unhealthy)
		if g.ConnectFailed > 0 {
			fmt.Fprintf(w, "    %-32s %6d more could not connect to its targets and went to another (in its error rate)\n", "", g.ConnectFailed)
		}
	}
	events := s.Events
	if len(events) > 5 {
		events = events[len(events)-5:]
	}
	for _, e := range events {
		fmt.Fprintf(w, "    event  %s %-22s %s\n", e.Time.Local().Format("01-02 15:04:05"), e.Kind, short.Terminal(short.Line(e.Message)))
	}
	for _, t := range slices.Sorted(maps.Keys(s.Logs)) {
		lines := s.Logs[t]
		if len(lines) > 3 {
			lines = lines[len(lines)-3:]
		}
		for _, l := range lines {
			fmt.Fprintf(w, "    log    %-22s %s\n", t, l)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func listed(items []string, max int) string {
	if len(items) == 0 {
		return ""
	}
	shown := items[:min(len(items), max)]
	more := ""
	if len(items) > max {
		more = fmt.Sprintf(", … %d more", len(items)-max)
	}
	return ": " + strings.Join(shown, ", ") + more
}

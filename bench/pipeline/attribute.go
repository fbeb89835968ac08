package main

import (
	"sort"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/short"
	"github.com/cutoverdev/cutover/internal/store"
)

// Work categories: time the engine spends waiting on something else.
const (
	catCommands    = "user commands"
	catImages      = "image builds"
	catPushes      = "pushes to the registry"
	catIntegration = "compose integration"
	catDeploys     = "deploy waits"
	catVerify      = "verify checks"
	catPerson      = "approval wait (person)"
)

var categories = []string{catCommands, catImages, catPushes, catIntegration, catDeploys, catVerify, catPerson}

// How attribute splits the wall time; printed with the figures.
const attribution = "work intervals come from the execution record and the log: a user command runs from its `$ command` " +
	"line to the next `$`/`building image` line or its action's end; an image build from `building image` to the action's end; " +
	"pushes from the build stage's last action end to its last `pushed` line; integration, deploy and verify actions count whole; " +
	"the person's wait runs from the approval request to its decision. Parallel work counts once (union of intervals). " +
	"Overhead = process wall time - union; its parts are the gaps, named by where they fall."

type interval struct {
	from, to time.Time
	cat      string
}

// workIntervals lists what the execution spent waiting on commands, the
// engine, the registry, the environments and the person.
func workIntervals(m measurement) []interval {
	var out []interval
	add := func(from, to time.Time, cat string) {
		if !from.IsZero() && to.After(from) {
			out = append(out, interval{from, to, cat})
		}
	}
	for _, st := range m.stages {
		var lastBuild time.Time
		for _, a := range st.Actions {
			if a.Started == nil || a.Finished == nil {
				continue
			}
			from, to := *a.Started, *a.Finished
			switch a.Kind {
			case config.ActionBuild, config.ActionTest, config.ActionCommand:
				var segStart time.Time
				segCat := ""
				for _, l := range linesOf(m.logs, a.Name, from, to) {
					next := ""
					switch {
					case strings.HasPrefix(l.Line, "$ "):
						next = catCommands
					case strings.HasPrefix(l.Line, "building image "):
						next = catImages
					default:
						continue
					}
					if segCat != "" {
						add(segStart, l.Time, segCat)
					}
					segStart, segCat = l.Time, next
				}
				if segCat != "" {
					add(segStart, to, segCat)
				}
				if a.Kind == config.ActionBuild && to.After(lastBuild) {
					lastBuild = to
				}
			case config.ActionIntegration:
				add(from, to, catIntegration)
			case config.ActionDeploy:
				add(from, to, catDeploys)
			case config.ActionVerify:
				add(from, to, catVerify)
			}
		}
		if !lastBuild.IsZero() && st.Finished != nil {
			var lastPush time.Time
			for _, l := range m.logs {
				if strings.HasPrefix(l.Line, "pushed ") && !l.Time.Before(lastBuild) && !l.Time.After(*st.Finished) {
					lastPush = l.Time
				}
			}
			add(lastBuild, lastPush, catPushes)
		}
	}
	if m.approval != nil && m.approval.DecidedAt != nil {
		add(m.approval.RequestedAt, *m.approval.DecidedAt, catPerson)
	}
	return out
}

func linesOf(logs []store.LogLine, action string, from, to time.Time) []store.LogLine {
	var out []store.LogLine
	for _, l := range logs {
		if l.Action == action && !l.Time.Before(from) && !l.Time.After(to) {
			out = append(out, l)
		}
	}
	return out
}

// union merges intervals (clipped to [lo, hi]) and returns the merged spans.
func union(in []interval, lo, hi time.Time) []interval {
	var xs []interval
	for _, x := range in {
		if x.from.Before(lo) {
			x.from = lo
		}
		if x.to.After(hi) {
			x.to = hi
		}
		if x.to.After(x.from) {
			xs = append(xs, x)
		}
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].from.Before(xs[j].from) })
	var out []interval
	for _, x := range xs {
		if n := len(out); n > 0 && !x.from.After(out[n-1].to) {
			if x.to.After(out[n-1].to) {
				out[n-1].to = x.to
			}
			continue
		}
		out = append(out, interval{from: x.from, to: x.to})
	}
	return out
}

func total(xs []interval) time.Duration {
	var d time.Duration
	for _, x := range xs {
		d += x.to.Sub(x.from)
	}
	return d
}

// gaps are the spans of [lo, hi] that no interval covers.
func gaps(covered []interval, lo, hi time.Time) []interval {
	var out []interval
	at := lo
	for _, x := range covered {
		if x.from.After(at) {
			out = append(out, interval{from: at, to: x.from})
		}
		if x.to.After(at) {
			at = x.to
		}
	}
	if hi.After(at) {
		out = append(out, interval{from: at, to: hi})
	}
	return out
}

// Names of the overhead's parts.
const (
	ovStart    = "process start (store, registry)"
	ovCheckout = "checkout and config"
	ovBetween  = "between and around actions (state saves, logs, scheduling)"
	ovApproval = "approval bookkeeping (evidence, poll after the decision)"
	ovFinish   = "finish (state, notifications, registry stop, exit)"
)

var overheadParts = []string{ovStart, ovCheckout, ovBetween, ovApproval, ovFinish}

// classify splits each gap at the execution's landmarks and names the
// pieces by where their middle falls.
func classify(gs []interval, m measurement) map[string]time.Duration {
	var firstStage, lastStage, apFrom, apTo time.Time
	for _, st := range m.stages {
		if st.Started != nil && (firstStage.IsZero() || st.Started.Before(firstStage)) {
			firstStage = *st.Started
		}
		if st.Finished != nil && st.Finished.After(lastStage) {
			lastStage = *st.Finished
		}
		for _, a := range st.Actions {
			if a.Kind == config.ActionApproval && a.Started != nil && a.Finished != nil {
				apFrom, apTo = *a.Started, *a.Finished
			}
		}
	}
	marks := []time.Time{m.exec.CreatedAt, firstStage, lastStage, apFrom, apTo}
	out := map[string]time.Duration{}
	for _, g := range gs {
		cuts := []time.Time{g.from}
		for _, t := range marks {
			if t.After(g.from) && t.Before(g.to) {
				cuts = append(cuts, t)
			}
		}
		sort.Slice(cuts, func(i, j int) bool { return cuts[i].Before(cuts[j]) })
		cuts = append(cuts, g.to)
		for i := 0; i+1 < len(cuts); i++ {
			mid := cuts[i].Add(cuts[i+1].Sub(cuts[i]) / 2)
			name := ovBetween
			switch {
			case !m.exec.CreatedAt.IsZero() && mid.Before(m.exec.CreatedAt):
				name = ovStart
			case firstStage.IsZero() || mid.Before(firstStage):
				name = ovCheckout
			case mid.After(lastStage):
				name = ovFinish
			case !apFrom.IsZero() && mid.After(apFrom) && mid.Before(apTo):
				name = ovApproval
			}
			out[name] += cuts[i+1].Sub(cuts[i])
		}
	}
	return out
}

// attribute turns one measurement into the report.
func attribute(m measurement) *Report {
	wall := m.end.Sub(m.start)
	work := workIntervals(m)
	covered := union(work, m.start, m.end)
	rep := &Report{
		Execution: m.exec.ID, Commit: short.SHA(m.exec.Commit), Status: m.exec.Status, Error: m.exec.Error,
		Wall: ms(wall), Attribution: attribution,
	}
	byCat := map[string][]interval{}
	for _, x := range work {
		byCat[x.cat] = append(byCat[x.cat], x)
	}
	person := total(union(byCat[catPerson], m.start, m.end))
	for _, c := range categories {
		rep.Work = append(rep.Work, Part{Name: c, Millis: ms(total(union(byCat[c], m.start, m.end)))})
	}
	overhead := wall - total(covered)
	parts := classify(gaps(covered, m.start, m.end), m)
	for _, p := range overheadParts {
		rep.OverheadParts = append(rep.OverheadParts, Part{Name: p, Millis: ms(parts[p])})
	}
	rep.Overhead, rep.PersonWait = ms(overhead), ms(person)
	rep.EndToEnd = ms(wall - person)
	for _, st := range m.stages {
		row := StageRow{Name: st.Name, Status: st.Status, Reason: st.Reason, Millis: span(st.Started, st.Finished)}
		for _, a := range st.Actions {
			row.Actions = append(row.Actions, ActionRow{Name: a.Name, Kind: a.Kind, Status: a.Status,
				Summary: a.Summary, Millis: span(a.Started, a.Finished)})
		}
		rep.Stages = append(rep.Stages, row)
	}
	rep.Goals = []Goal{
		{Name: "commit to production, end to end (without the person's wait)", Target: "< " + goalEndToEnd.String(),
			Value: fmtMs(rep.EndToEnd), Met: m.exec.Status == "succeeded" && wall-person < goalEndToEnd},
		{Name: "engine overhead", Target: "< " + goalOverhead.String(), Value: fmtMs(rep.Overhead), Met: overhead < goalOverhead},
	}
	return rep
}

func span(from, to *time.Time) float64 {
	if from == nil || to == nil {
		return 0
	}
	return ms(to.Sub(*from))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

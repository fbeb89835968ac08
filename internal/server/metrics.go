package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/platform/local"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsWindow is how many of the latest executions a scrape reads for
// the stage, action and approval series: a scrape stays cheap however long
// the history. Counts from that window can go down when old executions
// leave it, which Prometheus treats as a counter reset.
const metricsWindow = 1000

var (
	stageBuckets     = []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600}
	detectionBuckets = []float64{1, 5, 10, 15, 30, 60, 120, 300, 600, 1800}
	approvalBuckets  = []float64{60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 3 * 24 * 3600, 7 * 24 * 3600}
)

// metricsHandler is GET /metrics: the daemon's Prometheus series, read
// from the store and the proxy at each scrape (the store's records have
// one writer each, the pipeline engine and the deployment controllers;
// this only reads). It sits behind the guard like /v1: a viewer token.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&collector{s: s, log: s.Log})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: slogPrinter{s.Log}})
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("metrics scrape", "err", fmt.Sprint(v...))
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descExecutions        = desc("cutover_executions", "Stored executions of the project by status.", "status")
	descQueue             = desc("cutover_queue_length", "Executions queued, not started yet.")
	descStage             = desc("cutover_stage_duration_seconds", "Duration of finished stages, from the stored timings of the latest executions.", "stage", "status")
	descAction            = desc("cutover_action_duration_seconds", "Duration of finished actions, from the stored timings of the latest executions.", "stage", "action", "kind", "status")
	descApprovalsPending  = desc("cutover_approvals_pending", "Approvals waiting for a decision.")
	descApprovalOldest    = desc("cutover_approval_oldest_pending_seconds", "How long the oldest pending approval has waited (0 without one).")
	descApprovalWait      = desc("cutover_approval_wait_seconds", "Time from an approval's request to its decision (approved, rejected or expired).", "status")
	descDeployments       = desc("cutover_deployments_total", "Finished deployments by environment, strategy and outcome (succeeded, failed, rolled_back, stopped).", "environment", "strategy", "outcome")
	descDeploymentsActive = desc("cutover_deployments_in_progress", "Deployments in progress by environment.", "environment")
	descRollbacks         = desc("cutover_rollbacks_total", "Deployments rolled back, by environment and reason (alarm, failed, stopped, rollback requested).", "environment", "reason")
	descDetection         = desc("cutover_detection_seconds", "Time from a deployment's first production traffic on the new set to the failure that ended it (alarm, failed health).", "environment", "reason")
	descProxyUp           = desc("cutover_proxy_up", "1 when the proxy answered the scrape, else 0 (and no target group series).")
	descTGRequests        = desc("cutover_target_group_requests_total", "Requests the proxy answered for a target group, by status class.", "environment", "service", "color", "code")
	descTGConnectFailed   = desc("cutover_target_group_connect_failures_total", "Requests that could not connect to a target of the group and went to another target (whose answer counts in that group's requests): failures of this group all the same.", "environment", "service", "color")
	descTGDuration        = desc("cutover_target_group_request_duration_seconds", "Latency of the requests the proxy answered for a target group.", "environment", "service", "color")
	descTGTargets         = desc("cutover_target_group_targets", "Targets of a target group by health state.", "environment", "service", "color", "state")
	descReqsRefused       = desc("cutover_listener_requests_refused_total", "Requests the proxy answered itself because of what the client sent or did (malformed or smuggling framing, slow or oversized heads and bodies, methods and versions not served, HTTP/2 over the in-flight budget), by environment, listener (production, test, redirect) and status. They count against no target group.", "environment", "listener", "code")
	descConnsRefused      = desc("cutover_listener_connections_refused_total", "Connections closed as they were accepted because their client held the listener's max_client_conns already.", "environment", "listener")
)

// collector reads the store (and the proxy) on each scrape.
type collector struct {
	s   *Server
	log *slog.Logger
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descExecutions, descQueue, descStage, descAction, descApprovalsPending, descApprovalOldest,
		descApprovalWait, descDeployments, descDeploymentsActive, descRollbacks, descDetection, descProxyUp, descTGRequests, descTGConnectFailed, descTGDuration, descTGTargets, descReqsRefused, descConnsRefused} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.executions(ctx, ch)
	c.deployments(ctx, ch)
	c.proxy(ctx, ch)
}

func (c *collector) executions(ctx context.Context, ch chan<- prometheus.Metric) {
	st, project := c.s.Store, c.s.Config.Project
	byStatus := map[string]float64{}
	for _, status := range []string{store.ExecutionQueued, store.ExecutionRunning, store.ExecutionWaiting, store.ExecutionSucceeded,
		store.ExecutionFailed, store.ExecutionCancelled, store.ExecutionSuperseded} {
		list, err := st.FindExecutions(ctx, store.ExecutionFilter{Project: project, Status: status})
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descExecutions, err)
			return
		}
		byStatus[status] = float64(len(list))
	}
	for status, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(descExecutions, prometheus.GaugeValue, n, status)
	}
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, byStatus[store.ExecutionQueued])

	latest, err := st.ListExecutions(ctx, project, metricsWindow)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descStage, err)
		return
	}
	stages, actions, waits := histograms{}, histograms{}, histograms{}
	for _, x := range latest {
		var ss []pipeline.StageState
		if len(x.Stages) > 0 && json.Unmarshal(x.Stages, &ss) != nil {
			continue // not the engine's shape: nothing to measure
		}
		for _, sg := range ss {
			if d, ok := span(sg.Started, sg.Finished); ok {
				stages.observe(stageBuckets, d, sg.Name, sg.Status)
			}
			for _, a := range sg.Actions {
				if d, ok := span(a.Started, a.Finished); ok {
					actions.observe(stageBuckets, d, sg.Name, a.Name, a.Kind, a.Status)
				}
			}
		}
		approvals, err := st.ListApprovals(ctx, x.ID)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descApprovalWait, err)
			return
		}
		for _, a := range approvals {
			if a.DecidedAt != nil && a.Status != store.ApprovalPending {
				waits.observe(approvalBuckets, a.DecidedAt.Sub(a.RequestedAt).Seconds(), a.Status)
			}
		}
	}
	stages.emit(ch, descStage)
	actions.emit(ch, descAction)
	waits.emit(ch, descApprovalWait)

	pending, err := st.PendingApprovals(ctx, project)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descApprovalsPending, err)
		return
	}
	oldest := 0.0
	for _, a := range pending {
		oldest = max(oldest, time.Since(a.RequestedAt).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(descApprovalsPending, prometheus.GaugeValue, float64(len(pending)))
	ch <- prometheus.MustNewConstMetric(descApprovalOldest, prometheus.GaugeValue, oldest)
}

func (c *collector) deployments(ctx context.Context, ch chan<- prometheus.Metric) {
	cfg := c.s.Config
	finished, rollbacks := map[[3]string]float64{}, map[[2]string]float64{}
	detection := histograms{}
	for _, env := range cfg.EnvironmentNames() {
		list, err := c.s.Store.ListDeployments(ctx, cfg.Project, env, 0)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descDeployments, err)
			return
		}
		active := 0.0
		for _, d := range list {
			if d.Status == store.DeploymentInProgress || d.Status == "" {
				active++
				continue
			}
			finished[[3]string{env, d.Strategy, d.Status}]++
			var st deploy.State
			_ = json.Unmarshal(d.Data, &st) // a deployment without state has no cause
			if d.Status == store.DeploymentRolledBack {
				rollbacks[[2]string{env, firstNonEmpty(st.Cause, "unknown")}]++
			}
			if !st.FirstTraffic.IsZero() && !st.DetectedAt.IsZero() && !st.DetectedAt.Before(st.FirstTraffic) {
				detection.observe(detectionBuckets, st.DetectedAt.Sub(st.FirstTraffic).Seconds(), env, firstNonEmpty(st.Cause, "unknown"))
			}
		}
		ch <- prometheus.MustNewConstMetric(descDeploymentsActive, prometheus.GaugeValue, active, env)
	}
	for k, n := range finished {
		ch <- prometheus.MustNewConstMetric(descDeployments, prometheus.CounterValue, n, k[0], k[1], k[2])
	}
	for k, n := range rollbacks {
		ch <- prometheus.MustNewConstMetric(descRollbacks, prometheus.CounterValue, n, k[0], k[1])
	}
	detection.emit(ch, descDetection)
}

// proxy re-exports the proxy's counters of the project's target groups
// (named SCOPE/SERVICE/COLOR, local.Scope) with the environment, service
// and color as labels.
func (c *collector) proxy(ctx context.Context, ch chan<- prometheus.Metric) {
	if c.s.Proxy == nil {
		ch <- prometheus.MustNewConstMetric(descProxyUp, prometheus.GaugeValue, 0)
		return
	}
	stats, err := c.s.Proxy.Stats(ctx)
	if err != nil {
		c.log.Debug("metrics: the proxy did not answer", "err", err)
		ch <- prometheus.MustNewConstMetric(descProxyUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descProxyUp, prometheus.GaugeValue, 1)
	for _, g := range stats.Groups {
		env, service, color, ok := groupLabels(c.s.Config, g.Group)
		if !ok {
			continue // another project's, or not a service's group
		}
		for code, n := range g.Codes {
			ch <- prometheus.MustNewConstMetric(descTGRequests, prometheus.CounterValue, float64(n), env, service, color, code)
		}
		ch <- prometheus.MustNewConstMetric(descTGConnectFailed, prometheus.CounterValue, float64(g.ConnectFailed), env, service, color)
		buckets := make(map[float64]uint64, len(g.Buckets))
		for _, b := range g.Buckets {
			buckets[b.UpperBound] = b.Count
		}
		ch <- prometheus.MustNewConstHistogram(descTGDuration, g.LatencyCount, g.LatencySum, buckets, env, service, color)
		ch <- prometheus.MustNewConstMetric(descTGTargets, prometheus.GaugeValue, float64(g.Healthy), env, service, color, "healthy")
		ch <- prometheus.MustNewConstMetric(descTGTargets, prometheus.GaugeValue, float64(g.Unhealthy), env, service, color, "unhealthy")
	}
	for _, l := range stats.Listeners {
		env, name, ok := scoped(c.s.Config, l.Listener)
		if !ok || name == "" || strings.Contains(name, "/") {
			continue // another project's
		}
		ch <- prometheus.MustNewConstMetric(descConnsRefused, prometheus.CounterValue, float64(l.ConnectionsRefused), env, name)
		for code, n := range l.RequestsRefused {
			ch <- prometheus.MustNewConstMetric(descReqsRefused, prometheus.CounterValue, float64(n), env, name, code)
		}
	}
}

// groupLabels splits a target group name of one of cfg's environments.
func groupLabels(cfg *config.Config, group string) (env, service, color string, ok bool) {
	env, rest, ok := scoped(cfg, group)
	if !ok {
		return "", "", "", false
	}
	service, color, found := strings.Cut(rest, "/")
	if found && service != "" && color != "" && !strings.Contains(color, "/") {
		return env, service, color, true
	}
	return "", "", "", false
}

// scoped splits a name the proxy holds for one of cfg's environments (a
// target group's, a listener's: local.Scope, then "/") into the
// environment and the rest; ok is false for another project's.
func scoped(cfg *config.Config, name string) (env, rest string, ok bool) {
	for _, e := range cfg.EnvironmentNames() {
		if rest, found := strings.CutPrefix(name, local.Scope(cfg.Project, e)+"/"); found {
			return e, rest, true
		}
	}
	return "", "", false
}

func span(start, end *time.Time) (float64, bool) {
	if start == nil || end == nil || end.Before(*start) {
		return 0, false
	}
	return end.Sub(*start).Seconds(), true
}

// histograms builds constant histograms by label values.
type histograms map[string]*histogram

type histogram struct {
	labels  []string
	count   uint64
	sum     float64
	buckets map[float64]uint64 // cumulative
}

func (h histograms) observe(bounds []float64, v float64, labels ...string) {
	key := strings.Join(labels, "\x00")
	x := h[key]
	if x == nil {
		x = &histogram{labels: labels, buckets: map[float64]uint64{}}
		for _, b := range bounds {
			x.buckets[b] = 0
		}
		h[key] = x
	}
	x.count++
	x.sum += v
	for _, b := range bounds {
		if v <= b {
			x.buckets[b]++
		}
	}
}

func (h histograms) emit(ch chan<- prometheus.Metric, d *prometheus.Desc) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		x := h[k]
		ch <- prometheus.MustNewConstHistogram(d, x.count, x.sum, x.buckets, x.labels...)
	}
}

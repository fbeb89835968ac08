package export

import (
	"encoding/json"
	"strings"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/cloudwatch"
)

// dashboard adds the environment's CloudWatch dashboard: per service one
// row with its p95 latency, 5xx responses, CPU and memory, and healthy
// (and unhealthy) target count, each load balancer metric per target group
// (blue and green) so that both sides of a blue/green release show. Its
// name is PROJECT-ENV.
func (g *gen) dashboard(t *cloudformation.Template, env string) {
	colors := []string{"Blue"}
	if g.blueGreen(env) {
		colors = append(colors, "Green")
	}
	// The metrics' dimensions are the full names (app/NAME/ID,
	// targetgroup/NAME/ID), cut from the ARNs: the same values as the
	// LoadBalancerFullName and TargetGroupFullName attributes, which moto's
	// CloudFormation cannot resolve inside a dashboard body.
	vars := map[string]any{"LoadBalancerFullName": cloudformation.Select(1, cloudformation.Split("loadbalancer/", cloudformation.Ref("LoadBalancer")))}
	lb := "${LoadBalancerFullName}"
	perGroup := func(name, metric, stat string) []any {
		var ms []any
		for _, c := range colors {
			tg := logicalID(name) + c + "TargetGroup"
			vars[tg+"FullName"] = cloudformation.Select(5, cloudformation.Split(":", cloudformation.Ref(tg)))
			ms = append(ms, []any{"AWS/ApplicationELB", metric, "LoadBalancer", lb, "TargetGroup", "${" + tg + "FullName}",
				map[string]any{"stat": stat, "label": strings.ToLower(c) + " " + metric}})
		}
		return ms
	}
	widget := func(x, y int, title string, metrics []any, yLabel string) map[string]any {
		return map[string]any{"type": "metric", "x": x, "y": y, "width": 6, "height": 6, "properties": map[string]any{
			"title": title, "region": "${AWS::Region}", "view": "timeSeries", "stacked": false, "period": 60,
			"metrics": metrics, "yAxis": map[string]any{"left": map[string]any{"label": yLabel, "min": 0}},
		}}
	}
	var widgets []any
	for row, name := range g.containers() {
		y := row * 6
		ecsDims := []any{"ClusterName", "${Cluster}", "ServiceName", name}
		healthy := append(perGroup(name, "HealthyHostCount", "Minimum"), perGroup(name, "UnHealthyHostCount", "Maximum")...)
		widgets = append(widgets,
			widget(0, y, name+": p95 latency", perGroup(name, "TargetResponseTime", "p95"), "seconds"),
			widget(6, y, name+": 5xx responses", perGroup(name, "HTTPCode_Target_5XX_Count", "Sum"), "count"),
			widget(12, y, name+": CPU and memory", []any{
				append([]any{"AWS/ECS", "CPUUtilization"}, append(ecsDims, map[string]any{"stat": "Average", "label": "CPU"})...),
				append([]any{"AWS/ECS", "MemoryUtilization"}, append(ecsDims, map[string]any{"stat": "Average", "label": "memory"})...),
			}, "percent"),
			widget(18, y, name+": healthy targets", healthy, "targets"),
		)
	}
	body, err := json.Marshal(map[string]any{"widgets": widgets})
	if err != nil {
		panic("export: dashboard body: " + err.Error()) // maps of strings and numbers: cannot happen
	}
	t.Resources["Dashboard"] = &cloudwatch.Dashboard{
		DashboardName: cloudformation.String(g.project + "-" + env),
		DashboardBody: cloudformation.SubVars(string(body), vars),
	}
}

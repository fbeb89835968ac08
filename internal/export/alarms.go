package export

import (
	"fmt"
	"strings"
	"time"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/cloudwatch"
	"github.com/cutoverdev/cutover/internal/config"
)

// alarms adds the CloudWatch alarms of one service in one environment and
// returns their names, which the deployment (ECS deployment alarms or
// CodeDeploy) watches. Thresholds and "M of N" come from the environment's
// strategy alarms where cutover.yaml sets them, else from defaults.
func (g *gen) alarms(t *cloudformation.Template, env, name string) []string {
	id := logicalID(name)
	prefix := g.project + "-" + env + "-" + name
	s := g.cfg.Services[name]
	configured := map[string]config.Alarm{}
	for _, a := range g.cfg.Environments[env].Strategy.Alarms {
		configured[a.Metric] = a
	}
	// setting returns the threshold, period (CloudWatch's standard resolution
	// is one minute), datapoints to alarm and evaluation periods.
	setting := func(metric string, def float64) (float64, int, int, int) {
		a, ok := configured[metric]
		if !ok {
			return def, 60, 1, 1
		}
		m, n := a.MofN()
		period := max(int(a.Period.Std()/time.Minute)*60, 60)
		return a.ParsedThreshold(), period, m, n
	}
	// Blue/green moves production between the two target groups at every
	// release, so the load balancer alarms read both: an alarm on one group
	// would watch an idle group every other release.
	colors := []string{"Blue"}
	if g.blueGreen(env) {
		colors = append(colors, "Green")
	}
	ecsDims := []cloudwatch.Alarm_Dimension{{Name: "ClusterName", Value: cloudformation.Ref("Cluster")}, {Name: "ServiceName", Value: name}}
	var names []string
	add := func(suffix, description string, a *cloudwatch.Alarm) {
		a.AlarmName = cloudformation.String(prefix + "-" + suffix)
		a.AlarmDescription = cloudformation.String(description)
		a.AlarmActions = []string{cloudformation.Ref("AlarmTopic")}
		a.TreatMissingData = cloudformation.String("notBreaching")
		t.Resources[id+logicalID(suffix)+"Alarm"] = a
		names = append(names, prefix+"-"+suffix)
	}
	// perGroup reads load balancer metrics of each target group (ids
	// PREFIX0, PREFIX1, ...: per group, one per metric) and combines them
	// with fn (MAX or SUM) into id.
	perGroup := func(idPrefix string, metrics []string, stat string, period int, fn, label string, ret bool) []cloudwatch.Alarm_MetricDataQuery {
		var qs []cloudwatch.Alarm_MetricDataQuery
		var ids []string
		for i, c := range colors {
			for j, metric := range metrics {
				qid := fmt.Sprintf("%s%d", idPrefix, i*len(metrics)+j)
				ids = append(ids, "FILL("+qid+", 0)")
				qs = append(qs, cloudwatch.Alarm_MetricDataQuery{Id: qid, ReturnData: cloudformation.Bool(false), MetricStat: &cloudwatch.Alarm_MetricStat{Period: period, Stat: stat,
					Metric: &cloudwatch.Alarm_Metric{Namespace: cloudformation.String("AWS/ApplicationELB"), MetricName: cloudformation.String(metric), Dimensions: []cloudwatch.Alarm_Dimension{
						{Name: "LoadBalancer", Value: cloudformation.GetAtt("LoadBalancer", "LoadBalancerFullName")},
						{Name: "TargetGroup", Value: cloudformation.GetAtt(id+c+"TargetGroup", "TargetGroupFullName")},
					}}}})
			}
		}
		return append(qs, cloudwatch.Alarm_MetricDataQuery{Id: idPrefix, Label: cloudformation.String(label),
			Expression: cloudformation.String(fn + "([" + strings.Join(ids, ", ") + "])"), ReturnData: cloudformation.Bool(ret)})
	}

	th, period, m, n := setting(config.MetricP95Latency, 0.5)
	add("p95-latency", "p95 target response time of "+name+" above the threshold (seconds), the slower of its target groups", &cloudwatch.Alarm{
		Metrics:           perGroup("latency", []string{"TargetResponseTime"}, "p95", period, "MAX", "p95 latency", true),
		DatapointsToAlarm: cloudformation.Int(m), EvaluationPeriods: n, Threshold: cloudformation.Float64(th), ComparisonOperator: "GreaterThanThreshold",
	})

	th, period, m, n = setting(config.MetricErrorRate, 0.01)
	// A target's 5xx and the connections the load balancer could not make
	// to a target (it answers those 502 itself, outside
	// HTTPCode_Target_5XX_Count, and counts them in RequestCount): a new
	// task set that refuses connections fails its requests, as the local
	// proxy counts connect failures in a group's error rate.
	rate := append(perGroup("errors", []string{"HTTPCode_Target_5XX_Count", "TargetConnectionErrorCount"}, "Sum", period, "SUM", "5xx responses and target connection errors", false),
		perGroup("requests", []string{"RequestCount"}, "Sum", period, "SUM", "requests", false)...)
	add("5xx-rate", "percentage of "+name+" requests that got a 5xx from a target or could not connect to one above the threshold, over both target groups", &cloudwatch.Alarm{
		Metrics: append(rate, cloudwatch.Alarm_MetricDataQuery{Id: "rate", Label: cloudformation.String("error percent"),
			Expression: cloudformation.String("IF(requests > 0, 100 * errors / requests, 0)"), ReturnData: cloudformation.Bool(true)}),
		DatapointsToAlarm: cloudformation.Int(m), EvaluationPeriods: n, Threshold: cloudformation.Float64(th * 100), ComparisonOperator: "GreaterThanThreshold",
	})

	th, period, m, n = setting(config.MetricUnhealthyTargets, 0)
	add("unhealthy-hosts", "unhealthy "+name+" targets in either target group", &cloudwatch.Alarm{
		Metrics:           perGroup("unhealthy", []string{"UnHealthyHostCount"}, "Maximum", period, "MAX", "unhealthy targets", true),
		DatapointsToAlarm: cloudformation.Int(m), EvaluationPeriods: n, Threshold: cloudformation.Float64(th), ComparisonOperator: "GreaterThanThreshold",
	})

	for _, metric := range []string{"CPUUtilization", "MemoryUtilization"} {
		add(map[string]string{"CPUUtilization": "cpu", "MemoryUtilization": "memory"}[metric], metric+" of "+name+" above 80%", &cloudwatch.Alarm{
			Namespace: cloudformation.String("AWS/ECS"), MetricName: cloudformation.String(metric), Dimensions: ecsDims,
			Statistic: cloudformation.String("Average"), Period: cloudformation.Int(60), DatapointsToAlarm: cloudformation.Int(3), EvaluationPeriods: 5,
			Threshold: cloudformation.Float64(80), ComparisonOperator: "GreaterThanThreshold",
		})
	}

	th, period, m, n = setting(config.MetricRunningTasks, float64(s.DesiredCount))
	add("running-tasks", "fewer running "+name+" tasks than the threshold", &cloudwatch.Alarm{
		Namespace: cloudformation.String("ECS/ContainerInsights"), MetricName: cloudformation.String("RunningTaskCount"), Dimensions: ecsDims,
		Statistic: cloudformation.String("Minimum"), Period: cloudformation.Int(period), DatapointsToAlarm: cloudformation.Int(m), EvaluationPeriods: n,
		Threshold: cloudformation.Float64(th), ComparisonOperator: "LessThanThreshold",
	})
	return names
}

package ecs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/cutoverdev/cutover/internal/alarm"
	"github.com/cutoverdev/cutover/internal/deploy"
)

// Health implements deploy.Platform: target health of the color's target
// groups, running tasks of its task sets, and the tasks ECS stopped because
// they could never serve.
func (p *Platform) Health(ctx context.Context, color string) (deploy.SetHealth, error) {
	if err := p.checkTaskSets(); err != nil {
		return deploy.SetHealth{}, err
	}
	var h deploy.SetHealth
	for _, name := range p.names() {
		s := p.o.Services[name]
		healthy, _, err := p.targetHealth(ctx, s.TargetGroups[color])
		if err != nil {
			return h, err
		}
		h.Healthy += healthy
		svc, err := p.describe(ctx, name)
		if err != nil {
			return h, err
		}
		ts, ok := taskSet(svc, color)
		want, asked := p.counts[color][name]
		if !ok {
			h.Total += want
			continue
		}
		if !asked {
			want = int(ts.ComputedDesiredCount)
		}
		h.Total += want
		h.Running += int(ts.RunningCount)
		failures, err := p.stoppedTasks(ctx, name, aws.ToString(ts.Id))
		if err != nil {
			return h, err
		}
		h.Failures = append(h.Failures, failures...)
	}
	return h, nil
}

func (p *Platform) targetHealth(ctx context.Context, tg string) (healthy, unhealthy int, err error) {
	out, err := p.c.ELB.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: &tg})
	if err != nil {
		return 0, 0, explain(err, "target group "+tg)
	}
	for _, d := range out.TargetHealthDescriptions {
		if d.TargetHealth == nil {
			continue
		}
		switch d.TargetHealth.State {
		case elbtypes.TargetHealthStateEnumHealthy:
			healthy++
		case elbtypes.TargetHealthStateEnumUnhealthy:
			unhealthy++
		}
	}
	return healthy, unhealthy, nil
}

// stoppedTasks lists the set's stopped tasks that failed (not those ECS
// stopped on purpose when scaling in).
func (p *Platform) stoppedTasks(ctx context.Context, name, setID string) ([]deploy.TaskFailure, error) {
	list, err := p.c.ECS.ListTasks(ctx, &ecs.ListTasksInput{Cluster: &p.o.Cluster, StartedBy: &setID, DesiredStatus: types.DesiredStatusStopped})
	if err != nil {
		return nil, explain(err, "tasks of task set "+setID)
	}
	if len(list.TaskArns) == 0 {
		return nil, nil
	}
	arns := list.TaskArns
	if len(arns) > 100 { // DescribeTasks takes at most 100
		arns = arns[:100]
	}
	out, err := p.c.ECS.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: &p.o.Cluster, Tasks: arns})
	if err != nil {
		return nil, explain(err, "tasks of task set "+setID)
	}
	var fs []deploy.TaskFailure
	for _, t := range out.Tasks {
		if f, ok := taskFailure(name, t); ok {
			fs = append(fs, f)
		}
	}
	return fs, nil
}

// taskFailure says why a stopped task failed, or false when ECS stopped it
// on purpose (scale in, deployment).
func taskFailure(service string, t types.Task) (deploy.TaskFailure, bool) {
	reason := aws.ToString(t.StoppedReason)
	failed := t.StopCode == types.TaskStopCodeTaskFailedToStart || t.StopCode == types.TaskStopCodeEssentialContainerExited ||
		strings.Contains(reason, "health check")
	if !failed {
		return deploy.TaskFailure{}, false
	}
	arn := aws.ToString(t.TaskArn)
	f := deploy.TaskFailure{Service: service, TaskID: arn[strings.LastIndex(arn, "/")+1:], Reason: reason}
	for _, c := range t.Containers {
		if c.ExitCode != nil {
			code := int(*c.ExitCode)
			f.ExitCode = &code
			if r := aws.ToString(c.Reason); r != "" {
				f.Reason = fmt.Sprintf("%s (container %s: %s)", reason, aws.ToString(c.Name), r)
			}
			break
		}
	}
	if f.Reason == "" {
		f.Reason = string(t.StopCode)
	}
	return f, true
}

// Metrics implements deploy.Platform from CloudWatch: RequestCount and
// HTTPCode_Target_5XX_Count summed per minute since the task set was
// created. CloudWatch gives percentiles, not the histogram alarm.Sample
// carries, so latency is left out (see LatencyP95).
func (p *Platform) Metrics(ctx context.Context, color string) (alarm.Sample, error) {
	if err := p.checkTaskSets(); err != nil {
		return alarm.Sample{}, err
	}
	now := time.Now()
	smp := alarm.Sample{At: now}
	for _, name := range p.names() {
		s := p.o.Services[name]
		svc, err := p.describe(ctx, name)
		if err != nil {
			return smp, err
		}
		ts, ok := taskSet(svc, color)
		if !ok {
			continue
		}
		smp.Running += int(ts.RunningCount)
		smp.Desired += int(ts.ComputedDesiredCount)
		healthy, unhealthy, err := p.targetHealth(ctx, s.TargetGroups[color])
		if err != nil {
			return smp, err
		}
		smp.Healthy += healthy
		smp.Unhealthy += unhealthy
		since := aws.ToTime(ts.CreatedAt)
		if since.IsZero() {
			since = now.Add(-time.Hour)
		}
		sums, err := p.metricSums(ctx, s, color, since.Truncate(time.Minute), now)
		if err != nil {
			return smp, err
		}
		smp.Requests += uint64(sums["requests"])
		smp.Errors5xx += uint64(sums["errors"])
	}
	return smp, nil
}

// LatencyP95 returns the p95 of TargetResponseTime of the color's target
// groups over the last window (the largest of the services), 0 without data.
func (p *Platform) LatencyP95(ctx context.Context, color string, window time.Duration) (time.Duration, error) {
	var worst float64
	now := time.Now()
	for _, name := range p.names() {
		out, err := p.getMetricData(ctx, p.o.Services[name], color, now.Add(-window), now, []string{"p95"})
		if err != nil {
			return 0, err
		}
		for _, r := range out.MetricDataResults {
			for _, v := range r.Values {
				worst = max(worst, v)
			}
		}
	}
	return time.Duration(worst * float64(time.Second)), nil
}

func (p *Platform) metricSums(ctx context.Context, s Service, color string, from, to time.Time) (map[string]float64, error) {
	out, err := p.getMetricData(ctx, s, color, from, to, []string{"requests", "errors"})
	if err != nil {
		return nil, err
	}
	sums := map[string]float64{}
	for _, r := range out.MetricDataResults {
		for _, v := range r.Values {
			sums[aws.ToString(r.Id)] += v
		}
	}
	return sums, nil
}

func (p *Platform) getMetricData(ctx context.Context, s Service, color string, from, to time.Time, ids []string) (*cloudwatch.GetMetricDataOutput, error) {
	lb := loadBalancerDimension(s.Listener + s.Rule)
	tg := targetGroupDimension(s.TargetGroups[color])
	dims := []cwtypes.Dimension{{Name: aws.String("TargetGroup"), Value: &tg}}
	if lb != "" {
		dims = append(dims, cwtypes.Dimension{Name: aws.String("LoadBalancer"), Value: &lb})
	}
	metric := map[string][2]string{
		"requests": {"RequestCount", "Sum"},
		"errors":   {"HTTPCode_Target_5XX_Count", "Sum"},
		"p95":      {"TargetResponseTime", "p95"},
	}
	in := &cloudwatch.GetMetricDataInput{StartTime: &from, EndTime: &to}
	for _, id := range ids {
		in.MetricDataQueries = append(in.MetricDataQueries, cwtypes.MetricDataQuery{
			Id: aws.String(id),
			MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{Namespace: aws.String("AWS/ApplicationELB"), MetricName: aws.String(metric[id][0]), Dimensions: dims},
				Period: aws.Int32(60),
				Stat:   aws.String(metric[id][1]),
			},
		})
	}
	out, err := p.c.CloudWatch.GetMetricData(ctx, in)
	if err != nil {
		return nil, explain(err, "metrics of target group "+tg)
	}
	return out, nil
}

package ecs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"
)

func greenSet() *ecs.DescribeServicesOutput {
	return &ecs.DescribeServicesOutput{Services: []types.Service{{Status: aws.String("ACTIVE"), DesiredCount: 2, TaskSets: []types.TaskSet{{
		Id: aws.String("ecs-svc/1"), ExternalId: aws.String("cutover/green/2"), Status: aws.String("ACTIVE"),
		RunningCount: 1, ComputedDesiredCount: 2, CreatedAt: aws.Time(time.Now().Add(-10 * time.Minute)),
	}}}}}
}

func targetHealth() *elb.DescribeTargetHealthOutput {
	th := func(s elbtypes.TargetHealthStateEnum) elbtypes.TargetHealthDescription {
		return elbtypes.TargetHealthDescription{TargetHealth: &elbtypes.TargetHealth{State: s}}
	}
	return &elb.DescribeTargetHealthOutput{TargetHealthDescriptions: []elbtypes.TargetHealthDescription{
		th(elbtypes.TargetHealthStateEnumHealthy), th(elbtypes.TargetHealthStateEnumUnhealthy), th(elbtypes.TargetHealthStateEnumInitial)}}
}

// TestHealthStub: a task whose container exited is a failure with its exit
// code; a task ECS stopped when scaling in is not.
func TestHealthStub(t *testing.T) {
	s := &stub{answer: func(op string, in any) (any, error) {
		switch op {
		case "DescribeServices":
			return greenSet(), nil
		case "DescribeTargetHealth":
			if tg := aws.ToString(in.(*elb.DescribeTargetHealthInput).TargetGroupArn); tg != stubTGGreen {
				return nil, errors.New("wrong target group " + tg)
			}
			return targetHealth(), nil
		case "ListTasks":
			if l := in.(*ecs.ListTasksInput); aws.ToString(l.StartedBy) != "ecs-svc/1" || l.DesiredStatus != types.DesiredStatusStopped {
				return nil, errors.New("ListTasks not filtered by task set and STOPPED")
			}
			return &ecs.ListTasksOutput{TaskArns: []string{"arn:aws:ecs:us-east-1:1:task/c/aaa", "arn:aws:ecs:us-east-1:1:task/c/bbb"}}, nil
		case "DescribeTasks":
			return &ecs.DescribeTasksOutput{Tasks: []types.Task{
				{TaskArn: aws.String("arn:aws:ecs:us-east-1:1:task/c/aaa"), StopCode: types.TaskStopCodeEssentialContainerExited,
					StoppedReason: aws.String("Essential container in task exited"),
					Containers:    []types.Container{{Name: aws.String("backend"), ExitCode: aws.Int32(3), Reason: aws.String("config missing")}}},
				{TaskArn: aws.String("arn:aws:ecs:us-east-1:1:task/c/bbb"), StopCode: types.TaskStopCodeServiceSchedulerInitiated,
					StoppedReason: aws.String("Scaling activity initiated by deployment")},
			}}, nil
		}
		return nil, errors.New("unexpected " + op)
	}}
	p := stubPlatform(t, s)
	h, err := p.Health(context.Background(), "green")
	if err != nil {
		t.Fatal(err)
	}
	if h.Healthy != 1 || h.Total != 2 || h.Running != 1 || len(h.Failures) != 1 {
		t.Fatalf("health %+v", h)
	}
	f := h.Failures[0]
	if f.TaskID != "aaa" || f.ExitCode == nil || *f.ExitCode != 3 || !strings.Contains(f.Reason, "config missing") {
		t.Errorf("failure %+v", f)
	}
}

// TestMetricsStub: CloudWatch sums since the task set was created become the
// cumulative sample; the queries name the ALB's dimensions.
func TestMetricsStub(t *testing.T) {
	s := &stub{answer: func(op string, in any) (any, error) {
		switch op {
		case "DescribeServices":
			return greenSet(), nil
		case "DescribeTargetHealth":
			return targetHealth(), nil
		case "GetMetricData":
			q := in.(*cloudwatch.GetMetricDataInput)
			var out cloudwatch.GetMetricDataOutput
			for _, m := range q.MetricDataQueries {
				dims := map[string]string{}
				for _, d := range m.MetricStat.Metric.Dimensions {
					dims[aws.ToString(d.Name)] = aws.ToString(d.Value)
				}
				if dims["TargetGroup"] != "targetgroup/backend-green/fedcba9876543210" || dims["LoadBalancer"] != "app/cutover/50dc6c495c0c9188" {
					return nil, errors.New("wrong dimensions")
				}
				vals := map[string][]float64{"requests": {100, 50}, "errors": {2, 1}}[aws.ToString(m.Id)]
				out.MetricDataResults = append(out.MetricDataResults, cwtypes.MetricDataResult{Id: m.Id, Values: vals})
			}
			return &out, nil
		}
		return nil, errors.New("unexpected " + op)
	}}
	p := stubPlatform(t, s)
	smp, err := p.Metrics(context.Background(), "green")
	if err != nil {
		t.Fatal(err)
	}
	if smp.Requests != 150 || smp.Errors5xx != 3 || smp.Healthy != 1 || smp.Unhealthy != 1 || smp.Running != 1 || smp.Desired != 2 {
		t.Errorf("sample %+v", smp)
	}
}

// TestErrorsExplained: access denied names the action and resource;
// throttling that outlasts the SDK's retries says so.
func TestErrorsExplained(t *testing.T) {
	for _, c := range []struct {
		code, want string
	}{
		{"AccessDeniedException", "access denied to ecs:CreateTaskSet on service backend"},
		{"ThrottlingException", "ecs:CreateTaskSet on service backend still throttled after the SDK's retries"},
		{"ServiceNotFoundException", "ServiceNotFoundException"},
	} {
		s := &stub{answer: func(op string, in any) (any, error) {
			if op == "DescribeServices" {
				return &ecs.DescribeServicesOutput{Services: []types.Service{{Status: aws.String("ACTIVE"), DesiredCount: 2}}}, nil
			}
			if op == "RegisterTaskDefinition" {
				return &ecs.RegisterTaskDefinitionOutput{TaskDefinition: &types.TaskDefinition{TaskDefinitionArn: aws.String("td:1")}}, nil
			}
			return nil, &smithy.GenericAPIError{Code: c.code, Message: "denied"}
		}}
		p := stubPlatform(t, s)
		err := p.ScaleSet(context.Background(), "blue", rev("1"), map[string]int{"backend": 1})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line containing %q", c.code, err, c.want)
		}
	}
}

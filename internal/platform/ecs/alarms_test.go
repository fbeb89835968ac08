package ecs

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// alarmsOut is a DescribeAlarms answer with metric alarms in these states.
func alarmsOut(states ...AlarmState) *cloudwatch.DescribeAlarmsOutput {
	out := &cloudwatch.DescribeAlarmsOutput{}
	for _, s := range states {
		out.MetricAlarms = append(out.MetricAlarms, cwtypes.MetricAlarm{AlarmName: aws.String(s.Name), StateValue: cwtypes.StateValue(s.State), StateReason: aws.String(s.Reason)})
	}
	return out
}

// TestAlarmStatesStub: CloudWatch's query protocol is stubbed at the
// middleware layer; metric and composite alarms come back in the order asked.
func TestAlarmStatesStub(t *testing.T) {
	s := &stub{answer: func(op string, in any) (any, error) {
		if op != "DescribeAlarms" {
			return nil, errors.New("unexpected " + op)
		}
		out := alarmsOut(AlarmState{"5xx", "OK", "fine"})
		out.CompositeAlarms = []cwtypes.CompositeAlarm{{AlarmName: aws.String("slo"), StateValue: cwtypes.StateValueAlarm, StateReason: aws.String("burn")}}
		return out, nil
	}}
	p := stubPlatform(t, s)
	got, err := p.AlarmStates(context.Background(), []string{"slo", "5xx"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (AlarmState{"slo", "ALARM", "burn"}) || got[1] != (AlarmState{"5xx", "OK", "fine"}) {
		t.Fatalf("states = %+v", got)
	}
	if a, ok := FiringAlarm(got); !ok || a.Name != "slo" {
		t.Errorf("FiringAlarm = %+v, %v", a, ok)
	}
	if _, err := p.AlarmStates(context.Background(), []string{"typo"}); err == nil || !strings.Contains(err.Error(), `"typo"`) {
		t.Errorf("unknown alarm: err = %v", err)
	}
}

// TestAlarmStateValuesCovered: every state the SDK knows is either firing
// (ALARM) or not, and no new value appears unnoticed.
func TestAlarmStateValuesCovered(t *testing.T) {
	firing := 0
	for _, v := range cwtypes.StateValue("").Values() {
		switch v {
		case cwtypes.StateValueOk, cwtypes.StateValueInsufficientData, cwtypes.StateValueAlarm:
		default:
			t.Errorf("alarm state %q from the SDK is not handled by FiringAlarm", v)
		}
		if _, ok := FiringAlarm([]AlarmState{{Name: "a", State: string(v)}}); ok {
			firing++
		}
	}
	if firing != 1 {
		t.Errorf("%d states fire, want only ALARM", firing)
	}
}

package ecs

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// AlarmState is the state of one CloudWatch alarm that gates a deployment.
type AlarmState struct {
	Name   string `json:"name"`
	State  string `json:"state"` // OK, ALARM or INSUFFICIENT_DATA
	Reason string `json:"reason,omitempty"`
}

// AlarmStates reads the states of the named metric and composite alarms, in
// the order of names. A name CloudWatch does not know is an error: a gate
// that cannot fire is a typo, not a pass.
func (p *Platform) AlarmStates(ctx context.Context, names []string) ([]AlarmState, error) {
	if len(names) == 0 {
		return nil, nil
	}
	found := map[string]AlarmState{}
	// DescribeAlarms takes at most 100 names per call.
	for chunk := range slices.Chunk(names, 100) {
		pages := cloudwatch.NewDescribeAlarmsPaginator(p.c.CloudWatch, &cloudwatch.DescribeAlarmsInput{
			AlarmNames: chunk,
			AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeMetricAlarm, cwtypes.AlarmTypeCompositeAlarm},
		})
		for pages.HasMorePages() {
			out, err := pages.NextPage(ctx)
			if err != nil {
				return nil, explain(err, "CloudWatch alarms")
			}
			for _, a := range out.MetricAlarms {
				found[aws.ToString(a.AlarmName)] = AlarmState{aws.ToString(a.AlarmName), string(a.StateValue), aws.ToString(a.StateReason)}
			}
			for _, a := range out.CompositeAlarms {
				found[aws.ToString(a.AlarmName)] = AlarmState{aws.ToString(a.AlarmName), string(a.StateValue), aws.ToString(a.StateReason)}
			}
		}
	}
	states := make([]AlarmState, 0, len(names))
	for _, n := range names {
		st, ok := found[n]
		if !ok {
			return nil, fmt.Errorf("ecs: CloudWatch has no alarm named %q: create it or remove it from the alarms of this environment in cutover.yaml", n)
		}
		states = append(states, st)
	}
	return states, nil
}

// FiringAlarm returns the first alarm in the ALARM state. OK and
// INSUFFICIENT_DATA do not stop a deployment, as with ECS's own alarm
// rollback.
func FiringAlarm(states []AlarmState) (AlarmState, bool) {
	for _, s := range states {
		if s.State == string(cwtypes.StateValueAlarm) {
			return s, true
		}
	}
	return AlarmState{}, false
}

package ecs

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/deploy"
)

func linearSchedule(percent int, wait time.Duration) []deploy.Step {
	var steps []deploy.Step
	for p := percent; p < 100; p += percent {
		steps = append(steps, deploy.Step{Percent: p, Wait: wait})
	}
	return append(steps, deploy.Step{Percent: 100})
}

// TestCodeDeployScheduleIsPersisted: while a CodeDeploy deployment runs,
// the controller keeps the waits its deployment reports (the deployment
// config's linear 10% every minute, the deployment group's 5 minute
// termination wait), which `status` and `deploy` compute the time left from.
func TestCodeDeployScheduleIsPersisted(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	sim := &linearDeployment{clock: clock, start: clock.Now()}
	h, _, _ := linearController(t, sim)
	var seen *deploy.Schedule
	progress := h.c.Progress
	h.c.Progress = func(e deploy.Event) {
		progress(e)
		if e.Kind != deploy.KindNews || !strings.Contains(e.Message, " 30% of traffic") || seen != nil {
			return
		}
		d, err := h.store.GetDeployment(h.ctx, e.Deployment)
		if err != nil {
			t.Error(err)
			return
		}
		var st deploy.State
		if err := json.Unmarshal(d.Data, &st); err != nil || st.Cloud == nil {
			t.Errorf("state %s: %v", d.Data, err)
			return
		}
		seen = st.Cloud.Schedule
	}
	h.deploy(rev("9"))
	want := &deploy.Schedule{Steps: linearSchedule(10, time.Minute), TerminationWait: 5 * time.Minute}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("schedule persisted %+v, want %+v", seen, want)
	}
}

// NativeSchedule reads the waits of an ECS-native deployment from the
// service's deployment configuration.
func TestNativeSchedule(t *testing.T) {
	cases := []struct {
		name string
		c    *types.DeploymentConfiguration
		want deploy.Schedule
	}{
		{"linear 25% every 2m, bake 10m", &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyLinear, BakeTimeInMinutes: aws.Int32(10),
			LinearConfiguration: &types.LinearConfiguration{StepPercent: aws.Float64(25), StepBakeTimeInMinutes: aws.Int32(2)}},
			deploy.Schedule{Steps: linearSchedule(25, 2*time.Minute), TerminationWait: 10 * time.Minute}},
		{"canary 10% for 5m", &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyCanary, BakeTimeInMinutes: aws.Int32(0),
			CanaryConfiguration: &types.CanaryConfiguration{CanaryPercent: aws.Float64(10), CanaryBakeTimeInMinutes: aws.Int32(5)}},
			deploy.Schedule{Steps: []deploy.Step{{Percent: 10, Wait: 5 * time.Minute}, {Percent: 100}}}},
		{"blue/green, bake 3m", &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyBlueGreen, BakeTimeInMinutes: aws.Int32(3)},
			deploy.Schedule{Steps: []deploy.Step{{Percent: 100}}, TerminationWait: 3 * time.Minute}},
	}
	for _, c := range cases {
		if got := NativeSchedule(c.c); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	// What cutover sends is what it reads back.
	cfg, err := NativeConfiguration(NativeOptions{Strategy: "LINEAR", LinearPercent: 20, StepWait: 3 * time.Minute, BakeTime: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := NativeSchedule(cfg).Total(), 4*3*time.Minute+15*time.Minute; got != want {
		t.Errorf("schedule of the configuration cutover sends: %s, want %s", got, want)
	}
}

package ecs

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

const stubServiceDeployment = "arn:aws:ecs:us-east-1:123456789012:service-deployment/c/backend/Xy0AbC1dEf2"

// TestContinue: `cutover continue` lets a CodeDeploy deployment waiting in
// Ready go on, and an ECS-native one paused at its PAUSE hook; one that does
// not wait is a clear error, not a silent success.
func TestContinue(t *testing.T) {
	var continued []string
	ready, paused := true, true
	s := &wireStub{answer: func(op string, req map[string]any) (int, any) {
		switch op {
		case "ContinueDeployment":
			if req["deploymentId"] != "d-1" || req["deploymentWaitType"] != "READY_WAIT" {
				return awsError("InvalidDeploymentWaitTypeException", "bad request")
			}
			if !ready {
				return awsError("DeploymentIsNotInReadyStateException", "The deployment d-1 is not in the Ready state.")
			}
			continued = append(continued, "codedeploy d-1")
			return http.StatusOK, map[string]any{}
		case "ListServiceDeployments":
			if req["cluster"] != "c" || req["service"] != "backend" || strings.Join(toStrings(req["status"]), ",") != "IN_PROGRESS" {
				return awsError("InvalidParameterException", "bad request")
			}
			return http.StatusOK, map[string]any{"serviceDeployments": []any{map[string]any{"serviceDeploymentArn": stubServiceDeployment,
				"serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/c/backend", "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/c", "status": "IN_PROGRESS"}}}
		case "DescribeServiceDeployments":
			status := "AWAITING_ACTION"
			if !paused {
				status = "SUCCEEDED"
			}
			return http.StatusOK, map[string]any{"failures": []any{}, "serviceDeployments": []any{map[string]any{
				"serviceDeploymentArn": stubServiceDeployment, "status": "IN_PROGRESS", "lifecycleStage": "PRE_PRODUCTION_TRAFFIC_SHIFT",
				"lifecycleHookDetails": []any{
					map[string]any{"hookId": "h-smoke", "targetType": "AWS_LAMBDA", "targetArn": "arn:aws:lambda:us-east-1:123456789012:function:smoke", "status": "SUCCEEDED"},
					map[string]any{"hookId": "h-pause", "targetType": "PAUSE", "status": status, "timeoutAction": "ROLLBACK", "expiresAt": epoch(time.Now().Add(time.Hour))},
				}}}}
		case "ContinueServiceDeployment":
			if req["serviceDeploymentArn"] != stubServiceDeployment || req["hookId"] != "h-pause" || req["action"] != "CONTINUE" {
				return awsError("InvalidParameterException", "continue of the wrong hook")
			}
			continued = append(continued, "ecs h-pause")
			return http.StatusOK, map[string]any{}
		}
		return awsError("InvalidOperationException", "unexpected "+op)
	}}
	p, err := New(s.clients(), Options{Cluster: "c", Services: map[string]Service{"backend": {ECSService: "backend", Port: 3001}}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.ContinueBlueGreen(ctx, "d-1"); err != nil {
		t.Fatal(err)
	}
	if arn, err := p.ContinueNative(ctx, "backend"); err != nil || arn != stubServiceDeployment {
		t.Fatalf("native continue: %q %v", arn, err)
	}
	if strings.Join(continued, ",") != "codedeploy d-1,ecs h-pause" {
		t.Errorf("continued %v", continued)
	}
	ready, paused = false, false
	if err := p.ContinueBlueGreen(ctx, "d-1"); err == nil || !strings.Contains(err.Error(), "does not wait for a continue") {
		t.Errorf("continue of a deployment not in Ready: %v", err)
	}
	if _, err := p.ContinueNative(ctx, "backend"); err == nil || !strings.Contains(err.Error(), "not paused for a continue") {
		t.Errorf("continue of a deployment not paused: %v", err)
	}
}

func toStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestNativeManualContinuePauses: manual_continue becomes a PAUSE hook
// before production traffic moves, rolling back when nobody continues.
func TestNativeManualContinuePauses(t *testing.T) {
	c, err := NativeConfiguration(NativeOptions{Strategy: "BLUE_GREEN", ManualWait: 90 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.LifecycleHooks) != 1 {
		t.Fatalf("hooks %+v", c.LifecycleHooks)
	}
	h := c.LifecycleHooks[0]
	if h.TargetType != types.DeploymentLifecycleHookTargetTypePause || h.LifecycleStages[0] != types.DeploymentLifecycleHookStagePreProductionTrafficShift ||
		h.TimeoutConfiguration.Action != types.DeploymentLifecycleHookActionRollback || *h.TimeoutConfiguration.TimeoutInMinutes != 90 {
		t.Errorf("pause hook %+v", h)
	}
	if ShiftTime(NativeOptions{Strategy: "BLUE_GREEN", ManualWait: 90 * time.Minute}) != 90*time.Minute {
		t.Error("the wait for a continue is not part of the deployment's own time")
	}
}

package ecs

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codedeploy"
	cdtypes "github.com/aws/aws-sdk-go-v2/service/codedeploy/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/store"
)

// TestCodeDeployStatusesCovered fails when the SDK gains a deployment or
// lifecycle event status DecideBlueGreen does not know.
func TestCodeDeployStatusesCovered(t *testing.T) {
	for _, v := range cdtypes.DeploymentStatus("").Values() {
		s := DecideBlueGreen(cdtypes.DeploymentInfo{Status: v}, nil)
		if strings.Contains(s.Reason, "unknown deployment status") {
			t.Errorf("deployment status %q from the SDK is not handled by DecideBlueGreen", v)
		}
	}
	for _, v := range cdtypes.LifecycleEventStatus("").Values() {
		s := DecideBlueGreen(cdtypes.DeploymentInfo{Status: cdtypes.DeploymentStatusInProgress}, &cdtypes.ECSTarget{LifecycleEvents: []cdtypes.LifecycleEvent{{LifecycleEventName: aws.String("Install"), Status: v}}})
		if strings.HasPrefix(s.Events[0].Status, "unknown status") {
			t.Errorf("lifecycle event status %q from the SDK is not handled by DecideBlueGreen", v)
		}
	}
}

func TestDecideBlueGreen(t *testing.T) {
	cases := []struct {
		d      cdtypes.DeploymentInfo
		target *cdtypes.ECSTarget
		phase  BlueGreenPhase
		err    string
	}{
		{cdtypes.DeploymentInfo{Status: cdtypes.DeploymentStatusCreated}, nil, BlueGreenWaiting, ""},
		{cdtypes.DeploymentInfo{Status: cdtypes.DeploymentStatusInProgress}, nil, BlueGreenShifting, ""},
		{cdtypes.DeploymentInfo{Status: cdtypes.DeploymentStatusInProgress, InstanceTerminationWaitTimeStarted: true}, nil, BlueGreenBaking, ""},
		{cdtypes.DeploymentInfo{Status: cdtypes.DeploymentStatusSucceeded}, nil, BlueGreenSucceeded, ""},
		{cdtypes.DeploymentInfo{Status: cdtypes.DeploymentStatusFailed, RollbackInfo: &cdtypes.RollbackInfo{RollbackDeploymentId: aws.String("d-2")}},
			&cdtypes.ECSTarget{LifecycleEvents: []cdtypes.LifecycleEvent{{LifecycleEventName: aws.String("AfterAllowTestTraffic"), Status: cdtypes.LifecycleEventStatusFailed, Diagnostics: &cdtypes.Diagnostics{Message: aws.String("hook returned Failed")}}}},
			BlueGreenFailed, "Failed and was rolled back: lifecycle event AfterAllowTestTraffic failed: hook returned Failed"},
		{cdtypes.DeploymentInfo{Status: cdtypes.DeploymentStatusStopped, ErrorInformation: &cdtypes.ErrorInformation{Message: aws.String("stopped by user")}}, nil, BlueGreenStopped, "stopped by user"},
		{cdtypes.DeploymentInfo{Status: "Exploded"}, nil, BlueGreenFailed, "unknown deployment status"},
	}
	for _, c := range cases {
		s := DecideBlueGreen(c.d, c.target)
		err := s.Err()
		if s.Phase != c.phase || (err != nil) != (c.err != "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: phase %s err %v, want %s %q", c.d.Status, s.Phase, err, c.phase, c.err)
		}
	}
}

func TestAppSpec(t *testing.T) {
	spec, err := AppSpec("arn:td:7", "backend", 3001, map[string]string{"AfterAllowTestTraffic": "smoke", "BeforeInstall": "prep"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":"0.0","Resources":[{"TargetService":{"Type":"AWS::ECS::Service","Properties":{"TaskDefinition":"arn:td:7","LoadBalancerInfo":{"ContainerName":"backend","ContainerPort":3001}}}}],"Hooks":[{"BeforeInstall":"prep"},{"AfterAllowTestTraffic":"smoke"}]}`
	if spec != want {
		t.Errorf("appspec\n got %s\nwant %s", spec, want)
	}
	spec, err = AppSpec("arn:td:7", "backend", 3001, nil, &types.AwsVpcConfiguration{Subnets: []string{"subnet-a", "subnet-b"}, SecurityGroups: []string{"sg-1"}, AssignPublicIp: types.AssignPublicIpEnabled})
	if err != nil {
		t.Fatal(err)
	}
	want = `{"version":"0.0","Resources":[{"TargetService":{"Type":"AWS::ECS::Service","Properties":{"TaskDefinition":"arn:td:7","LoadBalancerInfo":{"ContainerName":"backend","ContainerPort":3001},"NetworkConfiguration":{"AwsvpcConfiguration":{"Subnets":["subnet-a","subnet-b"],"SecurityGroups":["sg-1"],"AssignPublicIp":"ENABLED"}}}}}]}`
	if spec != want {
		t.Errorf("appspec with a network\n got %s\nwant %s", spec, want)
	}
	if _, err := AppSpec("td", "c", 1, map[string]string{"AfterInstal": "x"}, nil); err == nil || !strings.Contains(err.Error(), `"AfterInstal"`) {
		t.Errorf("misspelt hook: %v", err)
	}
	if _, err := DeploymentConfigName("Canary50Percent"); err == nil {
		t.Error("unknown traffic name accepted")
	}
}

// TestCodeDeployFailureDuringTerminationWait: the controller follows a
// CodeDeploy deployment through traffic shifting and the termination wait
// to a failure with automatic rollback, and records it as rolled back.
func TestCodeDeployFailureDuringTerminationWait(t *testing.T) {
	polls := 0
	s := &stub{answer: func(op string, in any) (any, error) {
		switch op {
		case "RegisterTaskDefinition":
			return &ecs.RegisterTaskDefinitionOutput{TaskDefinition: &types.TaskDefinition{TaskDefinitionArn: aws.String("td:2")}}, nil
		case "CreateDeployment":
			return &codedeploy.CreateDeploymentOutput{DeploymentId: aws.String("d-1")}, nil
		case "GetDeployment":
			polls++
			d := cdtypes.DeploymentInfo{DeploymentId: aws.String("d-1"), Status: cdtypes.DeploymentStatusInProgress, InstanceTerminationWaitTimeStarted: polls >= 2}
			if polls >= 3 {
				d.Status = cdtypes.DeploymentStatusFailed
				d.RollbackInfo = &cdtypes.RollbackInfo{RollbackDeploymentId: aws.String("d-2")}
				d.ErrorInformation = &cdtypes.ErrorInformation{Message: aws.String("alarm backend-5xx in ALARM")}
			}
			return &codedeploy.GetDeploymentOutput{DeploymentInfo: &d}, nil
		case "GetDeploymentTarget":
			if polls == 1 {
				return nil, &cdtypes.DeploymentTargetDoesNotExistException{Message: aws.String("not yet")}
			}
			if id := aws.ToString(in.(*codedeploy.GetDeploymentTargetInput).TargetId); id != "c:backend" {
				return nil, errors.New("target id " + id)
			}
			return &codedeploy.GetDeploymentTargetOutput{DeploymentTarget: &cdtypes.DeploymentTarget{EcsTarget: &cdtypes.ECSTarget{LifecycleEvents: []cdtypes.LifecycleEvent{
				{LifecycleEventName: aws.String("Install"), Status: cdtypes.LifecycleEventStatusSucceeded},
				{LifecycleEventName: aws.String("AllowTraffic"), Status: cdtypes.LifecycleEventStatusSucceeded},
			}}}}, nil
		case "DescribeServices":
			return &ecs.DescribeServicesOutput{Services: []types.Service{{ServiceName: aws.String("backend"), Status: aws.String("ACTIVE")}}}, nil
		}
		return nil, errors.New("unexpected " + op)
	}}
	p := stubPlatform(t, s)
	h := newCtrl(t, codeDeployDriven(t, p, ""), []string{"backend"}, "    strategy: { type: blue_green }\n")
	got := h.deploy(rev("2"))
	h.wantReadable(got)
	if got.Status != store.DeploymentRolledBack || !strings.Contains(got.Reason, "rolled back: alarm backend-5xx in ALARM") {
		t.Fatalf("deployment %s: %s", got.Status, got.Reason)
	}
	if want := "Pending,Install,TerminationWait,RolledBack"; strings.Join(h.phases(), ",") != want {
		t.Errorf("phases %v, want %s", h.phases(), want)
	}
}

// TestStopBlueGreenStub: stop and rollback ask CodeDeploy to roll back.
func TestStopBlueGreenStub(t *testing.T) {
	s := &stub{answer: func(op string, in any) (any, error) {
		if st, ok := in.(*codedeploy.StopDeploymentInput); ok && aws.ToBool(st.AutoRollbackEnabled) && aws.ToString(st.DeploymentId) == "d-1" {
			return &codedeploy.StopDeploymentOutput{Status: cdtypes.StopStatusPending}, nil
		}
		return nil, errors.New("unexpected " + op)
	}}
	if err := stubPlatform(t, s).StopBlueGreen(context.Background(), "d-1"); err != nil {
		t.Fatal(err)
	}
}

// TestCodeDeployOnMoto creates a CodeDeploy blue/green deployment. moto
// keeps a deployment in status Created forever and implements neither
// StopDeployment nor GetDeploymentTarget, so the test asserts the calls and
// the stored deployment (config name, AppSpec content); waiting and stopping
// are covered by the stub tests.
func TestCodeDeployOnMoto(t *testing.T) {
	m := startMoto(t)
	ctx := context.Background()
	e := m.setup(t, ctx, "backend", types.DeploymentControllerTypeCodeDeploy)
	_, err := m.cd.CreateApplication(ctx, &codedeploy.CreateApplicationInput{ApplicationName: aws.String("bluemed"), ComputePlatform: cdtypes.ComputePlatformEcs})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.cd.CreateDeploymentGroup(ctx, &codedeploy.CreateDeploymentGroupInput{
		ApplicationName: aws.String("bluemed"), DeploymentGroupName: aws.String("production-backend"),
		ServiceRoleArn:  aws.String("arn:aws:iam::123456789012:role/codedeploy"),
		DeploymentStyle: &cdtypes.DeploymentStyle{DeploymentType: cdtypes.DeploymentTypeBlueGreen, DeploymentOption: cdtypes.DeploymentOptionWithTrafficControl},
		EcsServices:     []cdtypes.ECSService{{ClusterName: &e.cluster, ServiceName: aws.String("backend")}},
		LoadBalancerInfo: &cdtypes.LoadBalancerInfo{TargetGroupPairInfoList: []cdtypes.TargetGroupPairInfo{{
			TargetGroups:     []cdtypes.TargetGroupInfo{{Name: aws.String("backend-blue")}, {Name: aws.String("backend-green")}},
			ProdTrafficRoute: &cdtypes.TrafficRoute{ListenerArns: []string{e.listener}},
			TestTrafficRoute: &cdtypes.TrafficRoute{ListenerArns: []string{e.testListener}},
		}}},
		AutoRollbackConfiguration: &cdtypes.AutoRollbackConfiguration{Enabled: true, Events: []cdtypes.AutoRollbackEvent{cdtypes.AutoRollbackEventDeploymentFailure, cdtypes.AutoRollbackEventDeploymentStopOnAlarm}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.calls.take()
	p := m.platform(t, e)
	id, err := p.StartBlueGreen(ctx, "backend", rev("4"), BlueGreenOptions{
		Application: "bluemed", DeploymentGroup: "production-backend", Traffic: "Canary10Percent5Minutes",
		Hooks: map[string]string{"AfterAllowTestTraffic": "cutover-smoke"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// DescribeServices: the service's assign-public-IP setting, kept in the
	// AppSpec's network configuration.
	wantCalls(t, "codedeploy", m.calls.take(), "RegisterTaskDefinition", "DescribeServices", "CreateDeployment")
	// Read it back with raw JSON: moto writes timestamps as strings, which
	// the SDK's GetDeployment deserializer rejects.
	var d struct {
		DeploymentInfo struct {
			DeploymentConfigName *string
			Status               cdtypes.DeploymentStatus
			Revision             *struct{ AppSpecContent *struct{ Content *string } }
		} `json:"deploymentInfo"`
	}
	m.jsonQuery(t, "CodeDeploy_20141006.GetDeployment", map[string]string{"deploymentId": id}, &d)
	info := d.DeploymentInfo
	if aws.ToString(info.DeploymentConfigName) != "CodeDeployDefault.ECSCanary10Percent5Minutes" {
		t.Errorf("deployment config %q", aws.ToString(info.DeploymentConfigName))
	}
	var spec struct {
		Resources []map[string]struct {
			Properties struct {
				TaskDefinition       string
				LoadBalancerInfo     struct{ ContainerName string }
				NetworkConfiguration *struct {
					AwsvpcConfiguration struct {
						Subnets, SecurityGroups []string
						AssignPublicIp          string
					}
				}
			}
		}
		Hooks []map[string]string
	}
	if info.Revision == nil || info.Revision.AppSpecContent == nil {
		t.Fatalf("deployment revision %+v", info.Revision)
	}
	if err := json.Unmarshal([]byte(aws.ToString(info.Revision.AppSpecContent.Content)), &spec); err != nil {
		t.Fatal(err)
	}
	props := spec.Resources[0]["TargetService"].Properties
	if !strings.HasSuffix(props.TaskDefinition, "task-definition/cutover-backend:2") || props.LoadBalancerInfo.ContainerName != "backend" || spec.Hooks[0]["AfterAllowTestTraffic"] != "cutover-smoke" {
		t.Errorf("appspec %+v", spec)
	}
	// The replacement tasks go in the environment's subnets, with its
	// security groups: without them CodeDeploy would keep the service's.
	if nc := props.NetworkConfiguration; nc == nil || !slices.Equal(nc.AwsvpcConfiguration.Subnets, e.subnets) ||
		!slices.Equal(nc.AwsvpcConfiguration.SecurityGroups, e.groups) || nc.AwsvpcConfiguration.AssignPublicIp != "DISABLED" {
		t.Errorf("appspec network configuration %+v, want subnets %v, security groups %v, no public IP", nc, e.subnets, e.groups)
	}
	st := DecideBlueGreen(cdtypes.DeploymentInfo{Status: info.Status}, nil)
	if st.Phase != BlueGreenWaiting {
		t.Errorf("state on moto %+v", st)
	}
}

// TestCodeDeployContinueRequest: `cutover continue` reaches a CodeDeploy
// deployment waiting in Ready as ContinueDeployment (READY_WAIT) through the
// controller's request events; the deployment then finishes.
func TestCodeDeployContinueRequest(t *testing.T) {
	var h *ctrl
	continued, asked := false, false
	s := &stub{answer: func(op string, in any) (any, error) {
		switch op {
		case "RegisterTaskDefinition":
			return &ecs.RegisterTaskDefinitionOutput{TaskDefinition: &types.TaskDefinition{TaskDefinitionArn: aws.String("td:2")}}, nil
		case "CreateDeployment":
			return &codedeploy.CreateDeploymentOutput{DeploymentId: aws.String("d-1")}, nil
		case "GetDeployment":
			d := cdtypes.DeploymentInfo{DeploymentId: aws.String("d-1"), Status: cdtypes.DeploymentStatusReady}
			if continued {
				d.Status = cdtypes.DeploymentStatusSucceeded
			} else if !asked {
				asked = true
				if _, err := deploy.Request(h.ctx, h.store, "bluemed", "production", deploy.RequestContinue, "dave"); err != nil {
					t.Error(err)
				}
			}
			return &codedeploy.GetDeploymentOutput{DeploymentInfo: &d}, nil
		case "GetDeploymentTarget":
			return nil, &cdtypes.DeploymentTargetDoesNotExistException{Message: aws.String("not yet")}
		case "ContinueDeployment":
			c := in.(*codedeploy.ContinueDeploymentInput)
			if aws.ToString(c.DeploymentId) != "d-1" || c.DeploymentWaitType != cdtypes.DeploymentWaitTypeReadyWait {
				return nil, errors.New("ContinueDeployment not for the ready wait of d-1")
			}
			continued = true
			return &codedeploy.ContinueDeploymentOutput{}, nil
		case "DescribeServices":
			return &ecs.DescribeServicesOutput{Services: []types.Service{{ServiceName: aws.String("backend"), Status: aws.String("ACTIVE")}}}, nil
		}
		return nil, errors.New("unexpected " + op)
	}}
	h = newCtrl(t, codeDeployDriven(t, stubPlatform(t, s), ""), []string{"backend"}, "    strategy: { type: blue_green, manual_continue: true }\n")
	got := h.deploy(rev("2"))
	h.wantReadable(got)
	if !continued || got.Status != store.DeploymentSucceeded {
		t.Fatalf("continued %v; deployment %s: %s", continued, got.Status, got.Reason)
	}
	if !strings.Contains(strings.Join(h.phases(), ","), "ReadyWait") {
		t.Errorf("phases %v: no ReadyWait", h.phases())
	}
}

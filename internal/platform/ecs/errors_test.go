package ecs

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
)

// TestErrorsExplained: access denied names the action and resource;
// throttling that outlasts the SDK's retries says so.
func TestErrorsExplained(t *testing.T) {
	for _, c := range []struct {
		code, want string
	}{
		{"AccessDeniedException", "access denied to ecs:UpdateService on service backend"},
		{"ThrottlingException", "ecs:UpdateService on service backend in cluster c still throttled after the SDK's retries"},
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
		d, err := stubPlatform(t, s).Driven(DrivenOptions{Engine: EngineRolling})
		if err != nil {
			t.Fatal(err)
		}
		in, err := d.Prepare(context.Background(), "backend", rev("1"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Start(context.Background(), "backend", in)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line containing %q", c.code, err, c.want)
		}
	}
}

// TestTransient: only what may succeed later is tried again by the
// controller: throttling and unreachable AWS past the SDK's retries, AWS's
// own faults; never access denied or a missing deployment.
func TestTransient(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&smithy.GenericAPIError{Code: "ThrottlingException", Fault: smithy.FaultClient}, true},
		{&smithy.GenericAPIError{Code: "InternalFailure", Fault: smithy.FaultServer}, true},
		{&retry.MaxAttemptsError{Attempt: 3, Err: errors.New("connection reset")}, true},
		{&smithy.GenericAPIError{Code: "AccessDeniedException", Fault: smithy.FaultClient}, false},
		{&smithy.GenericAPIError{Code: "DeploymentDoesNotExistException", Fault: smithy.FaultClient}, false},
	}
	for _, c := range cases {
		err := explain(c.err, "deployment d-1")
		if got := transient(err); got != c.want {
			t.Errorf("%v: transient %v, want %v", err, got, c.want)
		}
	}
}

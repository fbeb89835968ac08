package ecs

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/codedeploy"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go/middleware"
)

// stub answers SDK calls at the start of the middleware stack with canned
// outputs, so the clients' own code paths (options, waiters, retries of
// this package) run without a network.
type stub struct {
	mu    sync.Mutex
	calls []string
	// answer returns the output of an operation for its input.
	answer func(op string, in any) (any, error)
}

func (s *stub) middleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("stub", func(ctx context.Context, in middleware.InitializeInput, _ middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		op := middleware.GetOperationName(ctx)
		s.mu.Lock()
		s.calls = append(s.calls, op)
		s.mu.Unlock()
		out, err := s.answer(op, in.Parameters)
		return middleware.InitializeOutput{Result: out}, middleware.Metadata{}, err
	}), middleware.Before)
}

func (s *stub) clients() Clients {
	creds := aws.AnonymousCredentials{}
	api := []func(*middleware.Stack) error{s.middleware}
	return Clients{
		ECS:        ecs.New(ecs.Options{Region: "us-east-1", Credentials: creds, APIOptions: api}),
		ELB:        elb.New(elb.Options{Region: "us-east-1", Credentials: creds, APIOptions: api}),
		CloudWatch: cloudwatch.New(cloudwatch.Options{Region: "us-east-1", Credentials: creds, APIOptions: api}),
		CodeDeploy: codedeploy.New(codedeploy.Options{Region: "us-east-1", Credentials: creds, APIOptions: api}),
	}
}

const (
	stubTGBlue   = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/backend-blue/0123456789abcdef"
	stubTGGreen  = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/backend-green/fedcba9876543210"
	stubListener = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/cutover/50dc6c495c0c9188/f2f7dc8efc522ab2"
)

func stubPlatform(t *testing.T, s *stub) *Platform {
	t.Helper()
	p, err := New(s.clients(), Options{
		Cluster: "c", Region: "us-east-1",
		Services: map[string]Service{"backend": {
			ECSService: "backend", Port: 3001, DesiredCount: 2,
			TargetGroups: map[string]string{"blue": stubTGBlue, "green": stubTGGreen}, Listener: stubListener,
		}},
		PollInterval: 1, MaxPollDelay: 1, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

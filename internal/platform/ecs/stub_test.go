package ecs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/codedeploy"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
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

// wireStub answers SDK calls at the bottom of the middleware stack with raw
// HTTP responses, so the SDK's own serializers and deserializers run on
// bodies written in the AWS API reference's documented JSON shapes (a
// misspelt or mistyped field in a canned answer is lost as it would be from
// AWS). It serves the JSON protocols (ECS, CodeDeploy); it is a fake because
// moto does not move CodeDeploy or ECS-native deployments forward.
type wireStub struct {
	mu    sync.Mutex
	calls []string
	// answer returns the HTTP status and JSON body of an operation for its
	// decoded JSON request. Errors are bodies with a "__type".
	answer func(op string, req map[string]any) (int, any)
}

func (s *wireStub) middleware(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("wire-stub", func(ctx context.Context, in middleware.DeserializeInput, _ middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
		op := middleware.GetOperationName(ctx)
		req := map[string]any{}
		if r, ok := in.Request.(*smithyhttp.Request); ok && r.GetStream() != nil {
			b, err := io.ReadAll(r.GetStream())
			if err != nil {
				return middleware.DeserializeOutput{}, middleware.Metadata{}, err
			}
			if err := json.Unmarshal(b, &req); err != nil {
				return middleware.DeserializeOutput{}, middleware.Metadata{}, fmt.Errorf("request of %s is not JSON: %v", op, err)
			}
		}
		s.mu.Lock()
		s.calls = append(s.calls, op)
		s.mu.Unlock()
		status, body := s.answer(op, req)
		b, err := json.Marshal(body)
		if err != nil {
			return middleware.DeserializeOutput{}, middleware.Metadata{}, err
		}
		resp := &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}}, Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b))}
		return middleware.DeserializeOutput{RawResponse: &smithyhttp.Response{Response: resp}}, middleware.Metadata{}, nil
	}), middleware.After)
}

func (s *wireStub) called(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c == op {
			n++
		}
	}
	return n
}

func (s *wireStub) clients() Clients {
	creds := aws.AnonymousCredentials{}
	api := []func(*middleware.Stack) error{s.middleware}
	return Clients{
		ECS:        ecs.New(ecs.Options{Region: "us-east-1", Credentials: creds, APIOptions: api}),
		CodeDeploy: codedeploy.New(codedeploy.Options{Region: "us-east-1", Credentials: creds, APIOptions: api}),
	}
}

// awsError is a JSON protocol error body.
func awsError(code, msg string) (int, any) {
	return http.StatusBadRequest, map[string]string{"__type": code, "message": msg}
}

// fakeClock moves time forward by each wait at once, so a deployment of
// minutes runs in a moment. It is a fake because no real clock can be sped up.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

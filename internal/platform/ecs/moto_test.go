package ecs

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codedeploy"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/cutoverdev/cutover/internal/store"
)

// moto is a moto server on 127.0.0.1 for one test.
type moto struct {
	URL   string
	calls *recorder
	c     Clients
	ecs   *ecs.Client
	elb   *elb.Client
	cd    *codedeploy.Client
}

// recorder keeps the operations the SDK clients called, in order.
type recorder struct {
	mu     sync.Mutex
	ops    []string
	inputs map[string]any // the last input of each operation, for what moto does not keep
}

func (r *recorder) middleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("record", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		r.mu.Lock()
		op := middleware.GetOperationName(ctx)
		r.ops = append(r.ops, op)
		if r.inputs == nil {
			r.inputs = map[string]any{}
		}
		r.inputs[op] = in.Parameters
		r.mu.Unlock()
		return next.HandleInitialize(ctx, in)
	}), middleware.Before)
}

// input returns the last input sent with operation op, or nil.
func (r *recorder) input(op string) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inputs[op]
}

// take returns the calls recorded since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

// startMoto runs moto_server on a free loopback port; it skips when moto is
// not installed, unless CUTOVER_REQUIRE_AWS_TOOLS=1.
func startMoto(t *testing.T) *moto {
	t.Helper()
	m := &moto{URL: testenv.StartMoto(t), calls: &recorder{}}
	var err error
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	m.c, err = NewClients(context.Background(), ClientOptions{Region: "us-east-1", Endpoint: m.URL, MaxAttempts: 2, APIOptions: []func(*middleware.Stack) error{m.calls.middleware}})
	if err != nil {
		t.Fatal(err)
	}
	m.ecs = m.c.ECS.(*ecs.Client)
	m.elb = m.c.ELB.(*elb.Client)
	m.cd = m.c.CodeDeploy.(*codedeploy.Client)
	return m
}

// ec2Query calls an EC2 query action on moto directly: the test needs only
// the default VPC and subnets, not the whole EC2 SDK module.
func (m *moto) ec2Query(t *testing.T, action string, out any) {
	t.Helper()
	form := url.Values{"Action": {action}, "Version": {"2016-11-15"}}
	req, _ := http.NewRequest("POST", m.URL+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := xml.Unmarshal(body, out); err != nil {
		t.Fatalf("%s: %v\n%s", action, err, body)
	}
}

// env is the AWS side of one environment, created in moto.
type env struct {
	cluster      string
	vpc          string
	subnets      []string
	groups       []string
	listener     string
	testListener string
	tgs          map[string]string
}

func (m *moto) setup(t *testing.T, ctx context.Context, service string, controller types.DeploymentControllerType) env {
	t.Helper()
	var subnets struct {
		Items []struct {
			ID  string `xml:"subnetId"`
			VPC string `xml:"vpcId"`
		} `xml:"subnetSet>item"`
	}
	m.ec2Query(t, "DescribeSubnets", &subnets)
	if len(subnets.Items) < 2 {
		t.Fatalf("moto has %d default subnets, want 2", len(subnets.Items))
	}
	e := env{cluster: "cutover-test", vpc: subnets.Items[0].VPC, tgs: map[string]string{}}
	var groups struct {
		Items []struct {
			ID  string `xml:"groupId"`
			VPC string `xml:"vpcId"`
		} `xml:"securityGroupInfo>item"`
	}
	m.ec2Query(t, "DescribeSecurityGroups", &groups)
	for _, g := range groups.Items {
		if g.VPC == e.vpc {
			e.groups = []string{g.ID}
		}
	}
	for _, s := range subnets.Items {
		if s.VPC == e.vpc && len(e.subnets) < 2 {
			e.subnets = append(e.subnets, s.ID)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := m.ecs.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: &e.cluster})
	must(err)
	lb, err := m.elb.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("cutover-test"), Subnets: e.subnets})
	must(err)
	for _, color := range []string{"blue", "green"} {
		tg, err := m.elb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{
			Name: aws.String(service + "-" + color), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
			VpcId: &e.vpc, TargetType: elbtypes.TargetTypeEnumIp, HealthCheckPath: aws.String("/healthz"),
		})
		must(err)
		e.tgs[color] = aws.ToString(tg.TargetGroups[0].TargetGroupArn)
	}
	for i, port := range []int32{80, 8080} {
		l, err := m.elb.CreateListener(ctx, &elb.CreateListenerInput{
			LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn, Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(port),
			DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(e.tgs["blue"])}},
		})
		must(err)
		if i == 0 {
			e.listener = aws.ToString(l.Listeners[0].ListenerArn)
		} else {
			e.testListener = aws.ToString(l.Listeners[0].ListenerArn)
		}
	}
	in := &ecs.CreateServiceInput{
		Cluster: &e.cluster, ServiceName: &service, DesiredCount: aws.Int32(2),
		DeploymentController: &types.DeploymentController{Type: controller},
	}
	if controller != types.DeploymentControllerTypeExternal {
		td, err := m.ecs.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
			Family: aws.String("cutover-" + service),
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String(service), Image: aws.String("example@sha256:0000"), MemoryReservation: aws.Int32(512),
				PortMappings: []types.PortMapping{{ContainerPort: aws.Int32(3001)}}}},
		})
		must(err)
		in.TaskDefinition = td.TaskDefinition.TaskDefinitionArn
		in.DesiredCount = aws.Int32(0) // moto marks a deployment without tasks COMPLETED at once
	}
	_, err = m.ecs.CreateService(ctx, in)
	must(err)
	m.calls.take() // the setup is not under test
	return e
}

func (m *moto) platform(t *testing.T, e env) *Platform {
	t.Helper()
	p, err := New(m.c, Options{
		Cluster: e.cluster, Region: "us-east-1", FamilyPrefix: "cutover-", LogGroup: "/cutover/test",
		LaunchType: types.LaunchTypeFargate, Subnets: e.subnets, SecurityGroups: e.groups,
		ExecutionRoleARN: "arn:aws:iam::123456789012:role/exec",
		Services: map[string]Service{"backend": {
			ECSService: "backend", Port: 3001, DesiredCount: 2, CPU: "256", Memory: "512",
			Env:          map[string]string{"MODE": "prod"},
			Secrets:      map[string]string{"DB_PASSWORD": "arn:aws:ssm:us-east-1:123456789012:parameter/db"},
			TargetGroups: e.tgs, Listener: e.listener, TestListener: e.testListener,
			TaskRoleARN: "arn:aws:iam::123456789012:role/backend", StopTimeout: 200 * time.Second,
		}},
		PollInterval: 10 * time.Millisecond, MaxPollDelay: 50 * time.Millisecond, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func rev(id string) store.Revision {
	return store.Revision{ID: id, Project: "bluemed", Environment: "production",
		Services: map[string]store.ServiceRevision{"backend": {Image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/backend@sha256:" + strings.Repeat(id[:1], 64), ConfigHash: "h" + id}}}
}

func wantCalls(t *testing.T, step string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: API calls\n got %v\nwant %v", step, got, want)
	}
}

// jsonQuery calls a JSON-protocol action on moto directly.
func (m *moto) jsonQuery(t *testing.T, target string, in, out any) {
	t.Helper()
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest("POST", m.URL+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/codedeploy/aws4_request, SignedHeaders=host, Signature=x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v\n%s", target, err, b)
	}
}

package release_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/cutoverdev/cutover/internal/deploy"
	"github.com/cutoverdev/cutover/internal/platform/ecs"
	"github.com/cutoverdev/cutover/internal/release"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// ecsProject is a one-service project whose environment staging is on ECS
// (endpoint: moto, or nowhere when moto is ""), with strategy.
func ecsProject(t *testing.T, motoURL, strategy string) *release.Manager {
	t.Helper()
	codeDeploy := ""
	if strings.Contains(strategy, "blue_green") {
		codeDeploy = "      codedeploy: { application: shop }\n"
	}
	endpoint := motoURL
	if endpoint == "" {
		endpoint = "http://127.0.0.1:1" // nothing listens: no AWS call may be needed
	}
	y := `version: 1
project: shop
services:
  backend: { image: shop/backend:1, port: 3001, route: { path_prefix: /api } }
environments:
  staging:
    platform: ecs
` + strategy + `
    ecs:
      region: us-east-1
      endpoint: ` + endpoint + `
      cluster: shop
      subnets: [subnet-0a1b2c3d]
` + codeDeploy + `      services:
        backend: { service: shop-backend }
`
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cutover.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := release.Open(context.Background(), filepath.Join(dir, "cutover.yaml"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.Actor = "tester"
	return m
}

// leftInProgress records revision r-2 and a deployment of it in phase, as
// a cutover killed while following AWS deployment id of backend leaves it.
func leftInProgress(t *testing.T, m *release.Manager, phase, id string) store.Deployment {
	t.Helper()
	ctx := context.Background()
	rev := store.Revision{ID: "r-2", Project: "shop", Environment: "staging", Source: "test",
		Services: map[string]store.ServiceRevision{"backend": {Image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-backend@sha256:" + strings.Repeat("2", 64)}}}
	if err := m.Store.CreateRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	st := deploy.State{NewColor: "new", PhaseStarted: time.Now().UTC(), Cloud: &deploy.CloudState{IDs: map[string]string{"backend": id}, Services: []string{"backend"}}}
	raw, _ := json.Marshal(st)
	d := store.Deployment{ID: deploy.NewDeploymentID(time.Now()), Project: "shop", Environment: "staging", Revision: "r-2", Strategy: "rolling",
		Phase: phase, Status: store.DeploymentInProgress, Data: raw, Owner: "pid 999999 on a dead host (cutover deploy)"}
	if err := m.Store.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestStatusFollowsAnECSDeploymentLeftByADeadCutover: `status` of an ECS
// environment whose cutover died looks at the AWS deployment it followed
// (moto, which completes a deployment without tasks at once) and records
// its end with the environment's state, as it does for local environments.
// While a live cutover holds the lease, status leaves it alone.
func TestStatusFollowsAnECSDeploymentLeftByADeadCutover(t *testing.T) {
	url := testenv.StartMoto(t)
	testenv.FakeAWSCredentials(t)
	ctx := context.Background()
	c, err := ecs.NewClients(ctx, ecs.ClientOptions{Region: "us-east-1", Endpoint: url, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	api := c.ECS.(*awsecs.Client)
	if _, err := api.CreateCluster(ctx, &awsecs.CreateClusterInput{ClusterName: aws.String("shop")}); err != nil {
		t.Fatal(err)
	}
	td, err := api.RegisterTaskDefinition(ctx, &awsecs.RegisterTaskDefinitionInput{Family: aws.String("shop-backend"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("backend"), Image: aws.String("example@sha256:" + strings.Repeat("0", 64)), MemoryReservation: aws.Int32(512)}}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := api.CreateService(ctx, &awsecs.CreateServiceInput{Cluster: aws.String("shop"), ServiceName: aws.String("shop-backend"), DesiredCount: aws.Int32(0),
		TaskDefinition: td.TaskDefinition.TaskDefinitionArn, DeploymentController: &ecstypes.DeploymentController{Type: ecstypes.DeploymentControllerTypeEcs}})
	if err != nil || len(svc.Service.Deployments) == 0 {
		t.Fatalf("service: %v", err)
	}
	m := ecsProject(t, url, "    strategy: { type: rolling }")
	d := leftInProgress(t, m, "Rolling", aws.ToString(svc.Service.Deployments[0].Id))

	// A live cutover holds the lease: status reads the store only.
	_, release, err := deploy.Lock(ctx, m.Store, "shop", "staging", "cutover deploy", false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(ctx, "staging")
	release()
	if err != nil || st[0].Deployment == nil || st[0].Deployment.Status != store.DeploymentInProgress {
		t.Fatalf("status while a cutover holds the lease: %+v %v", st, err)
	}

	st, err = m.Status(ctx, "staging")
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Store.GetDeployment(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.DeploymentSucceeded || got.Phase != "Succeeded" {
		t.Errorf("deployment after status: %s %s (%s), want its end recorded", got.Status, got.Phase, got.Reason)
	}
	if st[0].Revision != "r-2" || st[0].Status != "up" || len(st[0].Unread) != 0 {
		t.Errorf("status: revision %q, %s, unread %q", st[0].Revision, st[0].Status, st[0].Unread)
	}
}

// TestStatusOfAnECSDeploymentWithAWSUnreachable: a look that cannot reach
// AWS leaves the deployment as it is and says what it could not read.
func TestStatusOfAnECSDeploymentWithAWSUnreachable(t *testing.T) {
	testenv.FakeAWSCredentials(t)
	m := ecsProject(t, "", "    strategy: { type: rolling }")
	d := leftInProgress(t, m, "Rolling", "ecs-svc/1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := m.Status(ctx, "staging")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := m.Store.GetDeployment(ctx, d.ID)
	if got.Status != store.DeploymentInProgress {
		t.Errorf("deployment %s after a look that could not read AWS", got.Status)
	}
	if u := strings.Join(st[0].Unread, "\n"); !strings.Contains(u, "deployment on AWS: ") {
		t.Errorf("unread %q does not say AWS could not be read", u)
	}
}

// TestPromoteOnECS: promote is recorded where AWS lets cutover end a wait,
// and refused, saying what AWS allows, where it has no API: a CodeDeploy
// linear shift's steps, any ECS rolling update.
func TestPromoteOnECS(t *testing.T) {
	ctx := context.Background()
	m := ecsProject(t, "", "    strategy: { type: blue_green, traffic: Linear10PercentEvery1Minute }")
	d := leftInProgress(t, m, "Shifting", "d-LINEAR1")
	_, err := m.Promote(ctx, "staging")
	if err == nil || !strings.Contains(err.Error(), "no API to skip its steps") || !strings.Contains(err.Error(), "TERMINATION_WAIT") {
		t.Errorf("promote while CodeDeploy shifts linearly: %v", err)
	}
	if _, err := m.Request(ctx, "staging", deploy.RequestPromote); err == nil {
		t.Error("the API's promote request was recorded while CodeDeploy shifts linearly")
	}
	d.Phase = "TerminationWait"
	if _, err := m.Store.UpdateDeployment(ctx, d, store.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Promote(ctx, "staging"); err != nil {
		t.Errorf("promote in the termination wait: %v", err)
	}
	evs, err := m.Store.ListEvents(ctx, store.EventFilter{Project: "shop", Environment: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Kind == deploy.RequestPromote {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d promote requests recorded, want the one accepted", n)
	}

	rolling := ecsProject(t, "", "    strategy: { type: rolling }")
	leftInProgress(t, rolling, "Rolling", "ecs-svc/1")
	if _, err := rolling.Promote(ctx, "staging"); err == nil || !strings.Contains(err.Error(), "rolling update has no steps or waits") {
		t.Errorf("promote of a rolling update: %v", err)
	}
}

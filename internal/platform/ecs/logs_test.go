package ecs

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// logGroupInMoto starts moto and creates the log group there; it returns
// cutover's client and the SDK's (to put events).
func logGroupInMoto(t *testing.T, ctx context.Context, group string) (LogsAPI, *cloudwatchlogs.Client) {
	t.Helper()
	m := startMoto(t)
	api, err := NewLogsClient(ctx, ClientOptions{Region: "us-east-1", Endpoint: m.URL, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	cw := api.(*cloudwatchlogs.Client)
	if _, err := cw.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
		t.Fatal(err)
	}
	return api, cw
}

// TestStreamLogsFromMoto reads a service's task logs from moto's CloudWatch
// Logs: only the service's streams (not those of a service whose name
// starts the same, nor another service's), in time order, from --since on;
// with follow, new events and a new task's stream show once each, events at
// the same millisecond as the last one read included, and so does a line
// that arrives after a later one of another task (within lateWindow).
func TestStreamLogsFromMoto(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	group := "/cutover/bluemed/production"
	api, cw := logGroupInMoto(t, ctx, group)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	put := func(stream string, at time.Duration, msg string) {
		t.Helper()
		_, _ = cw.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream)})
		if _, err := cw.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream),
			LogEvents: []logtypes.InputLogEvent{{Timestamp: aws.Int64(base.Add(at).UnixMilli()), Message: aws.String(msg)}}}); err != nil {
			t.Fatal(err)
		}
	}
	put("backend/backend/task1", 0, "too old")
	put("backend/backend/task1", 10*time.Minute, "first")
	put("backend/backend/task2", 11*time.Minute, "second")
	put("backend/backend/task1", 12*time.Minute, "third\n")
	put("backend-worker/backend-worker/task9", 11*time.Minute, "another service whose name starts the same")
	put("frontend/frontend/task5", 11*time.Minute, "another service")

	var mu sync.Mutex
	var got []string
	emit := func(e LogEvent) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s %s %s", e.Time.Sub(base), e.Task, e.Message))
		return nil
	}
	q := LogsQuery{Group: group, StreamPrefix: "backend/", Since: base.Add(5 * time.Minute)}
	if err := StreamLogs(ctx, api, q, emit); err != nil {
		t.Fatal(err)
	}
	want := "10m0s task1 first|11m0s task2 second|12m0s task1 third"
	if s := strings.Join(got, "|"); s != want {
		t.Fatalf("events = %s\nwant     %s", s, want)
	}

	// Follow: new events, one at the last event's millisecond, and a new task.
	got = nil
	q.Follow, q.Poll = true, time.Second
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- StreamLogs(fctx, api, q, emit) }()
	waitFor := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			mu.Lock()
			k := len(got)
			mu.Unlock()
			if k >= n {
				return
			}
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("waited for %d events, have %v", n, got)
	}
	waitFor(3)
	put("backend/backend/task2", 12*time.Minute, "same millisecond as third")
	put("backend/backend/task3", 13*time.Minute, "a new task")
	put("frontend/frontend/task5", 13*time.Minute, "still another service")
	waitFor(5)
	// Lines that arrive late: CloudWatch Logs orders nothing across streams.
	put("backend/backend/task4", 12*time.Minute+30*time.Second, "arrived 30s behind the newest line")
	put("backend/backend/task4", 11*time.Minute, "arrived 2m behind the newest line")
	waitFor(6)
	time.Sleep(2500 * time.Millisecond) // two more polls: nothing may repeat
	stop()
	if err := <-done; err != nil {
		t.Fatalf("follow ended with %v, want nil when its context ends", err)
	}
	want = want + "|12m0s task2 same millisecond as third|13m0s task3 a new task|12m30s task4 arrived 30s behind the newest line"
	if s := strings.Join(got, "|"); s != want {
		t.Fatalf("followed events = %s\nwant              %s", s, want)
	}

	err := StreamLogs(ctx, api, LogsQuery{Group: "/cutover/bluemed/nowhere", StreamPrefix: "backend/"}, emit)
	if err == nil || !strings.Contains(err.Error(), "log group /cutover/bluemed/nowhere does not exist") {
		t.Fatalf("missing group: err = %v", err)
	}
}

// TestStreamLogsReadsEveryTaskStream: a service that ran more than 100
// tasks in the period (FilterLogEvents takes at most 100 named streams)
// still shows every task's lines.
func TestStreamLogsReadsEveryTaskStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	group := "/cutover/bluemed/staging"
	api, cw := logGroupInMoto(t, ctx, group)
	base := time.Now().Add(-time.Hour)
	const tasks = 120
	for i := range tasks {
		stream := fmt.Sprintf("backend/backend/task%03d", i)
		if _, err := cw.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream)}); err != nil {
			t.Fatal(err)
		}
		if _, err := cw.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream),
			LogEvents: []logtypes.InputLogEvent{{Timestamp: aws.Int64(base.Add(time.Duration(i) * time.Second).UnixMilli()), Message: aws.String("started")}}}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	err := StreamLogs(ctx, api, LogsQuery{Group: group, StreamPrefix: "backend/", Since: base.Add(-time.Minute)}, func(e LogEvent) error {
		seen[e.Task] = true
		return nil
	})
	if err != nil || len(seen) != tasks {
		t.Fatalf("lines of %d tasks (err %v), want %d", len(seen), err, tasks)
	}
}

// TestClientsHonourAWSEndpointURL: without ecs.endpoint in cutover.yaml the
// clients keep the SDK's AWS_ENDPOINT_URL, as the aws CLI does (the smoke
// script points both at moto with it), and ecs.endpoint still wins.
func TestClientsHonourAWSEndpointURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	group := "/cutover/bluemed/endpoint"
	_, cw := logGroupInMoto(t, ctx, group)
	t.Setenv("AWS_ENDPOINT_URL", aws.ToString(cw.Options().BaseEndpoint))
	api, err := NewLogsClient(ctx, ClientOptions{Region: "us-east-1", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := StreamLogs(ctx, api, LogsQuery{Group: group, Since: time.Now().Add(-time.Minute)}, func(LogEvent) error { return nil }); err != nil {
		t.Fatalf("with AWS_ENDPOINT_URL: %v", err)
	}
	c, err := NewClients(ctx, ClientOptions{Region: "us-east-1", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := StackOutputs(ctx, c.CloudFormation, "no-such-stack"); err == nil || !strings.Contains(err.Error(), "no-such-stack") {
		t.Fatalf("CloudFormation with AWS_ENDPOINT_URL: %v", err)
	}
	// ecs.endpoint wins: a closed port fails, moto is not asked.
	api, err = NewLogsClient(ctx, ClientOptions{Region: "us-east-1", Endpoint: "http://127.0.0.1:1", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := StreamLogs(ctx, api, LogsQuery{Group: group}, func(LogEvent) error { return nil }); err == nil {
		t.Fatal("ecs.endpoint on a closed port: no error, so AWS_ENDPOINT_URL won")
	}
}

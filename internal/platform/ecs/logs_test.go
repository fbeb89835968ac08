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

// TestStreamLogsFromMoto reads a service's task logs from moto's CloudWatch
// Logs: only the service's streams (not those of a service whose name
// starts the same, nor another service's), in time order, from --since on;
// with follow, new events and a new task's stream show once each, events at
// the same millisecond as the last one read included.
func TestStreamLogsFromMoto(t *testing.T) {
	m := startMoto(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	api, err := NewLogsClient(ctx, ClientOptions{Region: "us-east-1", Endpoint: m.URL, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	cw := api.(*cloudwatchlogs.Client)
	group := "/cutover/bluemed/production"
	if _, err := cw.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)}); err != nil {
		t.Fatal(err)
	}
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
	time.Sleep(2500 * time.Millisecond) // two more polls: nothing may repeat
	stop()
	if err := <-done; err != nil {
		t.Fatalf("follow ended with %v, want nil when its context ends", err)
	}
	want = want + "|12m0s task2 same millisecond as third|13m0s task3 a new task"
	if s := strings.Join(got, "|"); s != want {
		t.Fatalf("followed events = %s\nwant              %s", s, want)
	}

	err = StreamLogs(ctx, api, LogsQuery{Group: "/cutover/bluemed/nowhere", StreamPrefix: "backend/"}, emit)
	if err == nil || !strings.Contains(err.Error(), "log group /cutover/bluemed/nowhere does not exist") {
		t.Fatalf("missing group: err = %v", err)
	}
}

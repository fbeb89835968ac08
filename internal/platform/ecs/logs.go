package ecs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// LogsAPI is the part of the CloudWatch Logs client `cutover logs` uses.
type LogsAPI interface {
	FilterLogEvents(context.Context, *cloudwatchlogs.FilterLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error)
}

// NewLogsClient connects to CloudWatch Logs as NewClients does to the others.
func NewLogsClient(ctx context.Context, o ClientOptions) (LogsAPI, error) {
	cfg, base, err := loadConfig(ctx, o)
	if err != nil {
		return nil, err
	}
	return cloudwatchlogs.NewFromConfig(cfg, func(opt *cloudwatchlogs.Options) { opt.BaseEndpoint = cmp.Or(base, opt.BaseEndpoint) }), nil
}

// LogsQuery selects a service's task logs. The awslogs driver writes each
// task's container to the stream PREFIX/CONTAINER/TASK_ID of the group; the
// task definitions cutover registers and exports set the prefix to the
// service's name.
type LogsQuery struct {
	Group        string
	StreamPrefix string        // such as "backend/": the service's streams only
	Since        time.Time     // the first event's earliest time
	Follow       bool          // keep polling for new events until ctx ends
	Poll         time.Duration // between polls with Follow; clamped to 1s..30s, 2s when 0
}

// LogEvent is one line a task wrote.
type LogEvent struct {
	Time    time.Time
	Task    string // the task's ID (the stream's last part)
	Message string
}

// lateWindow is how far before the newest event read a poll reads again:
// CloudWatch Logs orders nothing across streams, and the awslogs driver of
// each task sends its lines in batches, so one task's line may arrive after
// another task's later one. A line that arrives more than lateWindow behind
// the newest one read is not shown by a poll that follows.
const lateWindow = time.Minute

// StreamLogs calls emit with the service's events from q.Since on, in time
// order per poll; with q.Follow it polls every q.Poll for new events (and
// new tasks' streams) until ctx ends, which is not an error. Each event is
// emitted once, also when it arrives late (see lateWindow).
func StreamLogs(ctx context.Context, api LogsAPI, q LogsQuery, emit func(LogEvent) error) error {
	if q.Group == "" {
		return errors.New("aws: no log group: the ECS environment sets none (environments.<env>.ecs.log_group, or the app stack's LogGroupName output)")
	}
	poll := min(max(cmp.Or(q.Poll, 2*time.Second), time.Second), 30*time.Second)
	since := q.Since.UnixMilli()
	newest := since
	seen := map[string]int64{} // the events read in the last lateWindow, by ID: a poll reads them again
	for {
		from := max(since, newest-lateWindow.Milliseconds())
		events, err := filterEvents(ctx, api, q.Group, q.StreamPrefix, from)
		if err != nil {
			return err
		}
		for _, e := range events {
			id, ts := aws.ToString(e.EventId), aws.ToInt64(e.Timestamp)
			stream := aws.ToString(e.LogStreamName)
			if _, ok := seen[id]; ok || ts < from || !strings.HasPrefix(stream, q.StreamPrefix) {
				continue
			}
			seen[id], newest = ts, max(newest, ts)
			if err := emit(LogEvent{Time: time.UnixMilli(ts), Task: stream[strings.LastIndex(stream, "/")+1:], Message: strings.TrimRight(aws.ToString(e.Message), "\n")}); err != nil {
				return err
			}
		}
		if !q.Follow {
			return nil
		}
		for id, ts := range seen {
			if ts < newest-lateWindow.Milliseconds() {
				delete(seen, id)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// filterEvents reads every event of the group's streams whose names start
// with prefix from from (milliseconds) on, in time order. The prefix goes to
// FilterLogEvents itself rather than to a list of streams from
// DescribeLogStreams: a stream's lastEventTimestamp there updates "on an
// eventual consistency basis", typically within an hour of ingestion (AWS
// API reference, LogStream), so selecting the streams by it would hide a
// running task's new events; and FilterLogEvents takes at most 100 named
// streams, fewer than a service's tasks over a few deployments.
func filterEvents(ctx context.Context, api LogsAPI, group, prefix string, from int64) ([]logtypes.FilteredLogEvent, error) {
	in := &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group), StartTime: aws.Int64(from)}
	if prefix != "" {
		in.LogStreamNamePrefix = aws.String(prefix)
	}
	var events []logtypes.FilteredLogEvent
	for {
		out, err := api.FilterLogEvents(ctx, in)
		if err != nil {
			var missing *logtypes.ResourceNotFoundException
			if errors.As(err, &missing) {
				return nil, fmt.Errorf("aws: log group %s does not exist (deploy the app stack, or fix environments.<env>.ecs.log_group)", group)
			}
			return nil, explain(err, "log group "+group)
		}
		events = append(events, out.Events...)
		if out.NextToken == nil || aws.ToString(out.NextToken) == aws.ToString(in.NextToken) {
			break
		}
		in.NextToken = out.NextToken
	}
	slices.SortStableFunc(events, func(a, b logtypes.FilteredLogEvent) int {
		return cmp.Compare(aws.ToInt64(a.Timestamp), aws.ToInt64(b.Timestamp))
	})
	return events, nil
}

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
	DescribeLogStreams(context.Context, *cloudwatchlogs.DescribeLogStreamsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.DescribeLogStreamsOutput, error)
	FilterLogEvents(context.Context, *cloudwatchlogs.FilterLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error)
}

// NewLogsClient connects to CloudWatch Logs as NewClients does to the others.
func NewLogsClient(ctx context.Context, o ClientOptions) (LogsAPI, error) {
	cfg, base, err := loadConfig(ctx, o)
	if err != nil {
		return nil, err
	}
	return cloudwatchlogs.NewFromConfig(cfg, func(opt *cloudwatchlogs.Options) { opt.BaseEndpoint = base }), nil
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

// Limits of one read: CloudWatch Logs filters at most 100 named streams per
// call; a service whose prefix has more streams shows the ones with the
// latest events.
const (
	maxStreams     = 100
	maxStreamPages = 40
)

// StreamLogs calls emit with the service's events from q.Since on, in time
// order per poll; with q.Follow it polls every q.Poll for new events (and
// new tasks' streams) until ctx ends, which is not an error.
func StreamLogs(ctx context.Context, api LogsAPI, q LogsQuery, emit func(LogEvent) error) error {
	if q.Group == "" {
		return errors.New("aws: no log group: the ECS environment sets none (environments.<env>.ecs.log_group, or the app stack's LogGroupName output)")
	}
	poll := min(max(cmp.Or(q.Poll, 2*time.Second), time.Second), 30*time.Second)
	from := q.Since.UnixMilli()
	seen := map[string]bool{} // event IDs at the last timestamp read, which the next poll reads again
	for {
		streams, err := logStreams(ctx, api, q.Group, q.StreamPrefix, from)
		if err != nil {
			return err
		}
		if len(streams) > 0 {
			events, err := filterEvents(ctx, api, q.Group, streams, from)
			if err != nil {
				return err
			}
			last := from
			next := map[string]bool{}
			for _, e := range events {
				id, ts := aws.ToString(e.EventId), aws.ToInt64(e.Timestamp)
				if seen[id] || !strings.HasPrefix(aws.ToString(e.LogStreamName), q.StreamPrefix) {
					continue
				}
				if ts > last {
					last, next = ts, map[string]bool{}
				}
				if ts == last {
					next[id] = true
				}
				stream := aws.ToString(e.LogStreamName)
				if err := emit(LogEvent{Time: time.UnixMilli(ts), Task: stream[strings.LastIndex(stream, "/")+1:], Message: strings.TrimRight(aws.ToString(e.Message), "\n")}); err != nil {
					return err
				}
			}
			if last > from {
				from, seen = last, next
			} else {
				for id := range next {
					seen[id] = true
				}
			}
		}
		if !q.Follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// logStreams lists the group's streams that start with prefix and have
// events at or after from (milliseconds), the latest first, at most
// maxStreams of them.
func logStreams(ctx context.Context, api LogsAPI, group, prefix string, from int64) ([]string, error) {
	type stream struct {
		name string
		last int64
	}
	var found []stream
	in := &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String(group)}
	if prefix != "" {
		in.LogStreamNamePrefix = aws.String(prefix)
	}
	for page := 0; page < maxStreamPages; page++ {
		out, err := api.DescribeLogStreams(ctx, in)
		if err != nil {
			var missing *logtypes.ResourceNotFoundException
			if errors.As(err, &missing) {
				return nil, fmt.Errorf("aws: log group %s does not exist (deploy the app stack, or fix environments.<env>.ecs.log_group)", group)
			}
			return nil, explain(err, "log group "+group)
		}
		for _, s := range out.LogStreams {
			// A stream with no event yet has no last event time: keep it.
			if last := aws.ToInt64(s.LastEventTimestamp); s.LastEventTimestamp == nil || last >= from {
				found = append(found, stream{aws.ToString(s.LogStreamName), last})
			}
		}
		if out.NextToken == nil || aws.ToString(out.NextToken) == aws.ToString(in.NextToken) {
			break
		}
		in.NextToken = out.NextToken
	}
	slices.SortFunc(found, func(a, b stream) int { return cmp.Or(cmp.Compare(b.last, a.last), strings.Compare(a.name, b.name)) })
	names := make([]string, 0, min(len(found), maxStreams))
	for _, s := range found[:min(len(found), maxStreams)] {
		names = append(names, s.name)
	}
	return names, nil
}

// filterEvents reads every event of the streams from from on, in time order.
func filterEvents(ctx context.Context, api LogsAPI, group string, streams []string, from int64) ([]logtypes.FilteredLogEvent, error) {
	in := &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group), LogStreamNames: streams, StartTime: aws.Int64(from)}
	var events []logtypes.FilteredLogEvent
	for {
		out, err := api.FilterLogEvents(ctx, in)
		if err != nil {
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

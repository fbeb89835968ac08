package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Payload is the body a generic webhook target receives.
type Payload struct {
	Event     string    `json:"event"`
	Execution string    `json:"execution"`
	Pipeline  string    `json:"pipeline"`
	Commit    string    `json:"commit"`
	Branch    string    `json:"branch"`
	Status    string    `json:"status"`
	Message   string    `json:"message"`
	URL       string    `json:"url,omitempty"`
	Time      time.Time `json:"time"`
}

// SlackMessage is the body a Slack-compatible incoming webhook receives.
// Text is always set, so that hooks which ignore blocks still show something.
type SlackMessage struct {
	Text   string       `json:"text"`
	Blocks []SlackBlock `json:"blocks,omitempty"`
}

// SlackBlock is a Block Kit block (section or context).
type SlackBlock struct {
	Type     string      `json:"type"`
	Text     *SlackText  `json:"text,omitempty"`
	Elements []SlackText `json:"elements,omitempty"`
}

// SlackText is a Block Kit text object.
type SlackText struct {
	Type string `json:"type"` // "mrkdwn"
	Text string `json:"text"`
}

func body(kind string, ev Event) ([]byte, error) {
	if kind == KindSlack {
		return json.Marshal(slackMessage(ev))
	}
	return json.Marshal(Payload{
		Event: ev.Kind, Execution: ev.Execution, Pipeline: ev.Project, Commit: ev.Commit,
		Branch: ev.Branch, Status: ev.Status, Message: ev.Message, URL: ev.URL, Time: ev.Time.UTC(),
	})
}

var kindTitle = map[string]string{
	ExecutionStarted:     ":arrow_forward: Execution started",
	ExecutionFailed:      ":x: Execution failed",
	ExecutionSucceeded:   ":white_check_mark: Execution succeeded",
	ApprovalNeeded:       ":raised_hand: Approval needed",
	DeploymentRolledBack: ":rewind: Deployment rolled back",
}

func slackMessage(ev Event) SlackMessage {
	title, ok := kindTitle[ev.Kind]
	if !ok {
		title = slackEscape(ev.Kind)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: *%s*", title, slackEscape(ev.Project))
	if ev.Branch != "" {
		fmt.Fprintf(&b, " on `%s`", slackEscape(ev.Branch))
	}
	if ev.Commit != "" {
		fmt.Fprintf(&b, " at `%s`", slackEscape(short(ev.Commit)))
	}
	if ev.Execution != "" {
		fmt.Fprintf(&b, " (execution %s)", slackEscape(ev.Execution))
	}
	if ev.Message != "" {
		b.WriteString("\n" + slackEscape(ev.Message))
	}
	if ev.URL != "" {
		fmt.Fprintf(&b, "\n<%s|Open>", slackEscape(ev.URL))
	}
	text := b.String()
	ctx := "status: " + slackEscape(ev.Status) + " · " + ev.Time.UTC().Format(time.RFC3339)
	return SlackMessage{
		Text: text,
		Blocks: []SlackBlock{
			{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: text}},
			{Type: "context", Elements: []SlackText{{Type: "mrkdwn", Text: ctx}}},
		},
	}
}

// slackEscape escapes the three characters Slack's mrkdwn gives a meaning to.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

package export

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// TestNotifierSubscribedWithoutURLs: the notifier is subscribed to every
// topic (alarms of each environment, approvals, pipeline results), its URLs
// live in a Secrets Manager secret the template creates empty, and no URL,
// parameter or default carries one.
func TestNotifierSubscribedWithoutURLs(t *testing.T) {
	tpl := bluemedTemplates(t)
	shared := tpl["shared"]
	secret := resourcesOfType(shared, "AWS::SecretsManager::Secret")["NotificationsSecret"]
	if secret["Name"] != "cutover/bluemed/notifications" || secret["SecretString"] != "{}" || secret["KmsKeyId"] == nil {
		t.Errorf("notifications secret = %v, want an empty, KMS-encrypted cutover/bluemed/notifications", secret)
	}
	fn := resourcesOfType(shared, "AWS::Lambda::Function")["NotifyFunction"]
	if fn == nil {
		t.Fatal("no notifier function in the shared template")
	}
	if env := jsonOf(fn["Environment"]); env != `{"Variables":{"SECRET_ID":{"Ref":"NotificationsSecret"}}}` {
		t.Errorf("notifier environment = %s, want the secret's ARN only", env)
	}
	for name, want := range map[string][]string{
		"app-staging":    {"AlarmTopic"},
		"app-production": {"AlarmTopic"},
		"pipeline":       {"ApprovalTopic", "NotificationTopic"},
	} {
		subs := resourcesOfType(tpl[name], "AWS::SNS::Subscription")
		perms := resourcesOfType(tpl[name], "AWS::Lambda::Permission")
		for _, topic := range want {
			s := subs[topic+"Notify"]
			if s == nil || s["Protocol"] != "lambda" || jsonOf(s["TopicArn"]) != `{"Ref":"`+topic+`"}` || jsonOf(s["Endpoint"]) != `{"Fn::ImportValue":"bluemed-NotifyFunctionArn"}` {
				t.Errorf("%s: %s subscription = %v", name, topic, s)
			}
			// Only this topic may invoke the function through this permission.
			if p := perms[topic+"NotifyPermission"]; p == nil || p["Principal"] != "sns.amazonaws.com" || jsonOf(p["SourceArn"]) != `{"Ref":"`+topic+`"}` {
				t.Errorf("%s: %s invoke permission = %v", name, topic, p)
			}
		}
	}
	for name, m := range tpl {
		text := jsonOf(m)
		for _, bad := range []string{"hooks.slack.com/services", "https://api.monday.com"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}

// TestNotifierPostsToWebhooks runs the template's inline Python code (the
// function's handler, called as Lambda would) with boto3 against moto's
// Secrets Manager and real HTTPS servers on 127.0.0.1: an alarm reaches Slack
// escaped and the webhook whole; an http:// URL is refused; a failing
// webhook raises (Lambda retries) without the URL in the log.
func TestNotifierPostsToWebhooks(t *testing.T) {
	moto := testenv.StartMoto(t)
	python := filepath.Join(filepath.Dir(testenv.RequireTool(t, "moto_server", "'moto[server]'")), "python3")
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("no python3 beside moto_server (%v): the notifier runs on the Python that has boto3", err)
	}

	var mu sync.Mutex
	got := map[string][]map[string]any{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		_ = json.Unmarshal(b, &body)
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], body)
		mu.Unlock()
		if r.URL.Path == "/broken" {
			http.Error(w, "no", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.py"), []byte(notifyCode), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	alarm := `{"AlarmName":"bluemed-production-backend-5xx-rate <!channel>","NewStateValue":"ALARM","NewStateReason":"Threshold <https://evil.example|click> crossed"}`
	run := func(secretName, secret string) (string, error) {
		event, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{"Sns": map[string]any{
			"TopicArn": "arn:aws:sns:us-east-1:123456789012:bluemed-production-alarms", "Subject": "ALARM", "Message": alarm}}}})
		// The secret is created in moto with boto3 (the SDK the function uses), then the handler runs.
		cmd := exec.CommandContext(ctx, python, "-c", `import json, sys, boto3
boto3.client("secretsmanager").create_secret(Name=sys.argv[1], SecretString=sys.argv[2])
import index
print(json.dumps(index.handler(json.loads(sys.argv[3]), None)))`, secretName, secret, string(event))
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SECRET_ID="+secretName, "AWS_ENDPOINT_URL="+moto, "AWS_DEFAULT_REGION=us-east-1",
			"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "SSL_CERT_FILE="+ca)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("ok", `{"slack_url":"`+srv.URL+`/slack","webhook_url":"`+srv.URL+`/monday"}`)
	if err != nil {
		t.Fatalf("handler failed: %v\n%s", err, out)
	}
	mu.Lock()
	slack, hook := got["/slack"], got["/monday"]
	mu.Unlock()
	if len(slack) != 1 || len(hook) != 1 {
		t.Fatalf("posts: slack %v, webhook %v\n%s", slack, hook, out)
	}
	text := slack[0]["text"].(string)
	if !strings.Contains(text, "ALARM: bluemed-production-backend-5xx-rate &lt;!channel&gt;") || strings.Contains(text, "<!channel>") || strings.Contains(text, "<https://") {
		t.Errorf("slack text not escaped: %q", text)
	}
	if hook[0]["title"] != "ALARM: bluemed-production-backend-5xx-rate <!channel>" || hook[0]["message"] != alarm || hook[0]["source"] != "cutover" {
		t.Errorf("webhook body = %v", hook[0])
	}

	// A plain-HTTP URL would send the notification (and the URL's token) in clear.
	plain := "http://127.0.0.1:1/slack-token-in-clear"
	out, err = run("plain", `{"slack_url":"`+plain+`"}`)
	if err != nil || !strings.Contains(out, "slack_url in the notifications secret is not an https URL") || strings.Contains(out, plain) {
		t.Errorf("http URL: err %v, output:\n%s", err, out)
	}

	out, err = run("broken", `{"webhook_url":"`+srv.URL+`/broken"}`)
	if err == nil || !strings.Contains(out, "webhook failed: HTTPError 500") || strings.Contains(out, srv.URL) {
		t.Errorf("broken webhook: err %v (want the handler to raise), output:\n%s", err, out)
	}
}

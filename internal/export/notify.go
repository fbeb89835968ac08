package export

import (
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/lambda"
	"github.com/awslabs/goformation/v7/cloudformation/logs"
	"github.com/awslabs/goformation/v7/cloudformation/secretsmanager"
	"github.com/awslabs/goformation/v7/cloudformation/sns"
)

// notifySecretName is the Secrets Manager secret that holds the webhook URLs
// of the notifications, as JSON: {"slack_url": "<Slack incoming webhook>",
// "webhook_url": "<any https URL>"}. The shared template creates it empty ("{}");
// the user puts the URLs with `aws secretsmanager put-secret-value`, so no
// URL is ever in a template, a parameter or a stack event.
func (g *gen) notifySecretName() string { return "cutover/" + g.project + "/notifications" }

// notifyCode is the Lambda function that forwards the SNS notifications
// (alarms, pipeline results, approvals) to Slack and to a generic webhook.
// It reads the URLs at each invocation (a rotated URL takes effect at once),
// posts only to https URLs, escapes Slack's control characters (an alarm or
// pipeline name cannot mention @channel or forge a link) and never logs a
// URL. A failed post raises, so Lambda retries the asynchronous event.
const notifyCode = `import json, os, urllib.request

import boto3

_secrets = boto3.client("secretsmanager")


def _urls():
    raw = _secrets.get_secret_value(SecretId=os.environ["SECRET_ID"]).get("SecretString") or "{}"
    try:
        conf = json.loads(raw)
    except ValueError:
        print("the notifications secret is not JSON: nothing sent")
        return {}
    urls = {}
    for key in ("slack_url", "webhook_url"):
        url = conf.get(key) if isinstance(conf, dict) else None
        if not url:
            continue
        if not isinstance(url, str) or not url.startswith("https://"):
            print(key + " in the notifications secret is not an https URL: not used")
            continue
        urls[key] = url
    return urls


def _describe(subject, message):
    try:
        m = json.loads(message)
    except ValueError:
        return subject or "cutover", message[:3000]
    if not isinstance(m, dict):
        return subject or "cutover", message[:3000]
    if "AlarmName" in m:
        return "%s: %s" % (m.get("NewStateValue", "?"), m["AlarmName"]), m.get("NewStateReason", "")
    if isinstance(m.get("approval"), dict):
        a = m["approval"]
        return ("Approval needed: %s, stage %s" % (a.get("pipelineName", "?"), a.get("stageName", "?")),
                "%s\n%s" % (a.get("customData", ""), a.get("approvalReviewLink", "")))
    d = m.get("detail")
    if isinstance(d, dict) and "pipeline" in d:
        return "Pipeline %s: %s" % (d["pipeline"], d.get("state", "?")), "execution %s" % d.get("execution-id", "?")
    return subject or "cutover", message[:3000]


def _slack_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        r.read(1024)


def handler(event, context):
    urls = _urls()
    failed = []
    for rec in event.get("Records", []):
        sns = rec.get("Sns", {})
        title, text = _describe(sns.get("Subject"), sns.get("Message", ""))
        posts = []
        if "slack_url" in urls:
            posts.append(("slack", urls["slack_url"], {"text": "*%s*\n%s" % (_slack_escape(title), _slack_escape(text))}))
        if "webhook_url" in urls:
            posts.append(("webhook", urls["webhook_url"], {"source": "cutover", "title": title, "text": text,
                                                           "topic": sns.get("TopicArn", ""), "message": sns.get("Message", "")}))
        for name, url, body in posts:
            try:
                _post(url, body)
            except Exception as e:
                # The URL is a credential: only its kind and the error's type are logged.
                print("%s webhook failed: %s %s" % (name, type(e).__name__, getattr(e, "code", "")))
                failed.append(name)
    if failed:
        raise RuntimeError("webhooks failed: " + ", ".join(sorted(set(failed))))
    return {"sent": len(urls)}
`

// notifier adds to the shared template the secret of the webhook URLs and
// the function that forwards notifications to them; the app and pipeline
// templates subscribe it to their topics (subscribeNotifier).
func (g *gen) notifier(t *cloudformation.Template) {
	r := t.Resources
	r["NotificationsSecret"] = &secretsmanager.Secret{
		Name:                      cloudformation.String(g.notifySecretName()),
		Description:               cloudformation.String(`Webhook URLs of the ` + g.project + ` notifications, as JSON {"slack_url": "<Slack incoming webhook URL>", "webhook_url": "<any https URL>"}; put them with aws secretsmanager put-secret-value`),
		SecretString:              cloudformation.String("{}"),
		KmsKeyId:                  cloudformation.RefPtr("LogsKey"),
		Tags:                      g.tags(),
		AWSCloudFormationMetadata: skip("CKV2_AWS_57", "The secret holds webhook URLs that Slack or the webhook's provider issues; they are rotated there, and a Secrets Manager rotation function cannot create new ones."),
	}
	logGroup := "/cutover/" + g.project + "/notify"
	r["NotifyLogGroup"] = &logs.LogGroup{LogGroupName: cloudformation.String(logGroup), RetentionInDays: cloudformation.Int(365),
		KmsKeyId: cloudformation.String(keyArn("LogsKey")), Tags: g.tags()}
	r["NotifyRole"] = &iam.Role{
		AssumeRolePolicyDocument: assumeRole("lambda.amazonaws.com"),
		Policies: []iam.Role_Policy{{PolicyName: "notify", PolicyDocument: policy(
			allow([]string{"logs:CreateLogStream", "logs:PutLogEvents"}, sub("${NotifyLogGroup.Arn}")),
			allow([]string{"secretsmanager:GetSecretValue"}, cloudformation.Ref("NotificationsSecret")),
			map[string]any{"Effect": "Allow", "Action": []string{"kms:Decrypt"}, "Resource": sub("${LogsKey.Arn}"),
				"Condition": map[string]any{"StringEquals": map[string]any{"kms:ViaService": []string{sub("secretsmanager.${AWS::Region}.amazonaws.com"), sub("lambda.${AWS::Region}.amazonaws.com")}}}},
		)}},
		Tags: g.tags(),
	}
	r["NotifyFunction"] = &lambda.Function{
		FunctionName: cloudformation.String(g.project + "-notify"),
		Description:  cloudformation.String("Forwards the " + g.project + " alarms, pipeline results and approval requests to Slack and a webhook (URLs in the " + g.notifySecretName() + " secret)"),
		Runtime:      cloudformation.String("python3.12"), Handler: cloudformation.String("index.handler"),
		Code:                       &lambda.Function_Code{ZipFile: cloudformation.String(notifyCode)},
		Role:                       cloudformation.GetAtt("NotifyRole", "Arn"),
		Timeout:                    cloudformation.Int(30),
		MemorySize:                 cloudformation.Int(128),
		Environment:                &lambda.Function_Environment{Variables: map[string]string{"SECRET_ID": cloudformation.Ref("NotificationsSecret")}},
		KmsKeyArn:                  cloudformation.String(sub("${LogsKey.Arn}")),
		LoggingConfig:              &lambda.Function_LoggingConfig{LogGroup: cloudformation.String(logGroup), LogFormat: cloudformation.String("Text")},
		Tags:                       g.tags(),
		AWSCloudFormationDependsOn: []string{"NotifyLogGroup"},
		AWSCloudFormationMetadata: skip(
			"CKV_AWS_117", "The function posts to Slack and webhook URLs on the internet; the VPC has no NAT (tasks use VPC endpoints), so inside it the function could reach neither.",
			"CKV_AWS_116", "SNS invokes the function asynchronously; a failed post raises, Lambda retries twice and logs the failure (without the URL) to the KMS-encrypted log group.",
			"CKV_AWS_115", "Reserving concurrency fails on accounts whose concurrency quota is the new-account minimum (10); at most one invocation per notification runs.",
			"CKV_AWS_272", "Inline ZipFile code is part of the reviewed template; code signing applies to uploaded packages."),
	}
	g.output(t, "NotifyFunctionArn", sub("arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${NotifyFunction}"))
}

// subscribeNotifier subscribes the shared notifier function to a topic of
// this template, and lets that topic (only) invoke it.
func (g *gen) subscribeNotifier(t *cloudformation.Template, topic string) {
	t.Resources[topic+"Notify"] = &sns.Subscription{Protocol: "lambda", TopicArn: cloudformation.Ref(topic), Endpoint: cloudformation.String(g.imp("NotifyFunctionArn"))}
	t.Resources[topic+"NotifyPermission"] = &lambda.Permission{Action: "lambda:InvokeFunction", FunctionName: g.imp("NotifyFunctionArn"),
		Principal: "sns.amazonaws.com", SourceArn: cloudformation.RefPtr(topic)}
}

package export

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
)

// TestCanariesOnHealthAndRoot: each environment runs a synthetic canary on
// the API's health route and one on the SPA's root (seed 000), at the
// environment's domain over HTTPS, each with an alarm on the alarm topic.
func TestCanariesOnHealthAndRoot(t *testing.T) {
	tpl := bluemedTemplates(t)
	nameRe := regexp.MustCompile(`^[0-9a-z_-]{1,21}$`)
	names := map[string]bool{}
	for _, env := range []string{"staging", "production"} {
		m := tpl["app-"+env]
		canaries := resourcesOfType(m, "AWS::Synthetics::Canary")
		alarms := resourcesOfType(m, "AWS::CloudWatch::Alarm")
		for svc, want := range map[string]string{"Backend": `"https://${DomainName}/api/health"`, "Frontend": `"https://${DomainName}/"`} {
			c := canaries[svc+"Canary"]
			if c == nil {
				t.Fatalf("app-%s: no %s canary (have %v)", env, svc, canaries)
			}
			name := c["Name"].(string)
			if !nameRe.MatchString(name) || names[name] {
				t.Errorf("app-%s: canary name %q is not a unique Synthetics name", env, name)
			}
			names[name] = true
			sub := c["Code"].(map[string]any)["Script"].(map[string]any)["Fn::Sub"].([]any)
			script, url := sub[0].(string), sub[1].(map[string]any)["URL"].(map[string]any)["Fn::Sub"]
			if url != want || strings.Count(script, "${") != 1 || !strings.Contains(script, "const url = ${URL};") || !strings.Contains(script, "res.statusCode < 400") {
				t.Errorf("app-%s: %s canary checks %v with\n%s", env, svc, url, script)
			}
			if jsonOf(c["ArtifactS3Location"]) != `{"Fn::Sub":"s3://${CanaryBucket}/`+strings.ToLower(svc)+`"}` || c["StartCanaryAfterCreation"] != true || c["ProvisionedResourceCleanup"] != "AUTOMATIC" {
				t.Errorf("app-%s: %s canary artifacts %v, started %v", env, svc, c["ArtifactS3Location"], c["StartCanaryAfterCreation"])
			}
			a := alarms[svc+"CanaryAlarm"]
			if a == nil || a["MetricName"] != "SuccessPercent" || a["Namespace"] != "CloudWatchSynthetics" || jsonOf(a["Dimensions"]) != `[{"Name":"CanaryName","Value":"`+name+`"}]` ||
				jsonOf(a["AlarmActions"]) != `[{"Ref":"AlarmTopic"}]` || a["ComparisonOperator"] != "LessThanThreshold" {
				t.Errorf("app-%s: %s canary alarm = %v", env, svc, a)
			}
		}
		b := resourcesOfType(m, "AWS::S3::Bucket")["CanaryBucket"]
		if jsonOf(b["PublicAccessBlockConfiguration"]) != `{"BlockPublicAcls":true,"BlockPublicPolicy":true,"IgnorePublicAcls":true,"RestrictPublicBuckets":true}` {
			t.Errorf("app-%s: canary bucket is not private: %v", env, b)
		}
	}
	if canaryName("shop", "production", "backend") == canaryName("bluemed", "production", "backend") {
		t.Error("two projects' canaries get the same name (names are unique per account and region)")
	}
}

// TestCanaryURLCannotBreakOutOfTheScript attacks the script with a route
// host and health path that try to end the string literal and run code, or
// to make Fn::Sub read a stack value.
func TestCanaryURLCannotBreakOutOfTheScript(t *testing.T) {
	cfg, err := config.Parse("cutover.yaml", []byte(`version: 1
project: shop
services:
  web:
    image: nginx
    port: 8080
    route: { host: shop.example.com }
    health: { path: "/h';require('child_process').exec('x');'\"${AWS::AccountId}" }
environments:
  production: { strategy: { type: rolling } }
`))
	if err != nil {
		t.Fatal(err)
	}
	files, err := Templates(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := resourcesOfType(rendered(t, files[1]), "AWS::Synthetics::Canary")["WebCanary"]
	url := c["Code"].(map[string]any)["Script"].(map[string]any)["Fn::Sub"].([]any)[1].(map[string]any)["URL"].(map[string]any)["Fn::Sub"].(string)
	var s string
	if err := json.Unmarshal([]byte(url), &s); err != nil {
		t.Fatalf("URL %s is not one string literal: %v", url, err)
	}
	// Fn::Sub leaves "${!X}" as the text "${X}": the path cannot read stack values.
	if !strings.HasPrefix(s, "https://shop.example.com/h';require(") || !strings.HasSuffix(s, `"${!AWS::AccountId}`) {
		t.Errorf("URL literal = %s", url)
	}
}

package export

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDashboardPerEnvironment: each environment has a dashboard whose body
// (after CloudFormation's Fn::Sub) is JSON, shows per service p95 latency,
// 5xx, CPU and memory and healthy targets, the load balancer metrics of both
// target groups in blue/green, and refers only to resources of its template.
func TestDashboardPerEnvironment(t *testing.T) {
	tpl := bluemedTemplates(t)
	for _, env := range []string{"staging", "production"} {
		m := tpl["app-"+env]
		d := resourcesOfType(m, "AWS::CloudWatch::Dashboard")["Dashboard"]
		if d == nil || d["DashboardName"] != "bluemed-"+env {
			t.Fatalf("app-%s: dashboard = %v", env, d)
		}
		subst := d["DashboardBody"].(map[string]any)["Fn::Sub"].([]any)
		text, vars := subst[0].(string), subst[1].(map[string]any)
		resources := m["Resources"].(map[string]any)
		ref := regexp.MustCompile(`\$\{([A-Za-z0-9:]+)\}`)
		for _, s := range ref.FindAllStringSubmatch(text, -1) {
			_, isVar := vars[s[1]]
			_, isResource := resources[s[1]]
			if !isVar && !isResource && s[1] != "AWS::Region" {
				t.Errorf("app-%s: dashboard refers to %s, neither a variable nor a resource of the template", env, s[0])
			}
		}
		// The full names are cut from the ARNs: arn:...:targetgroup/NAME/ID is
		// field 5 of ":", arn:...:loadbalancer/app/NAME/ID after "loadbalancer/".
		if got := jsonOf(vars["BackendBlueTargetGroupFullName"]); got != `{"Fn::Select":[5,{"Fn::Split":[":",{"Ref":"BackendBlueTargetGroup"}]}]}` {
			t.Errorf("app-%s: target group full name = %s", env, got)
		}
		if got := jsonOf(vars["LoadBalancerFullName"]); got != `{"Fn::Select":[1,{"Fn::Split":["loadbalancer/",{"Ref":"LoadBalancer"}]}]}` {
			t.Errorf("app-%s: load balancer full name = %s", env, got)
		}
		var body struct {
			Widgets []struct {
				Properties struct {
					Title   string
					Metrics [][]any
				}
			}
		}
		if err := json.Unmarshal([]byte(ref.ReplaceAllString(text, "X")), &body); err != nil {
			t.Fatalf("app-%s: dashboard body is not JSON: %v", env, err)
		}
		groups := 1
		if env == "production" {
			groups = 2
		}
		for _, svc := range []string{"backend", "frontend"} {
			want := map[string]int{"TargetResponseTime/p95": groups, "HTTPCode_Target_5XX_Count/Sum": groups,
				"CPUUtilization/Average": 1, "MemoryUtilization/Average": 1, "HealthyHostCount/Minimum": groups}
			got := map[string]int{}
			for _, w := range body.Widgets {
				if !strings.HasPrefix(w.Properties.Title, svc+":") {
					continue
				}
				for _, metric := range w.Properties.Metrics {
					stat := metric[len(metric)-1].(map[string]any)["stat"].(string)
					if metric[0] == "AWS/ECS" && !slices.Contains(metric, any(svc)) {
						t.Errorf("app-%s: %s's ECS metric is not of its service: %v", env, svc, metric)
					}
					got[metric[1].(string)+"/"+stat]++
				}
			}
			for k, n := range want {
				if got[k] != n {
					t.Errorf("app-%s: %s shows %s %d times, want %d (per target group)", env, svc, k, got[k], n)
				}
			}
		}
	}
}

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

// TestErrorRateAlarmCountsTargetConnectionErrors: the load balancer answers
// a connection it could not make to a target with its own 502, outside
// HTTPCode_Target_5XX_Count, so the error-rate alarm adds
// TargetConnectionErrorCount of every target group: a new task set that
// refuses connections fails its alarm, as the local proxy counts connect
// failures. An alarm takes at most 10 metric queries.
func TestErrorRateAlarmCountsTargetConnectionErrors(t *testing.T) {
	tpl := bluemedTemplates(t)
	for env, colors := range map[string][]string{"staging": {"Blue"}, "production": {"Blue", "Green"}} {
		var alarm map[string]any
		for _, a := range resourcesOfType(tpl["app-"+env], "AWS::CloudWatch::Alarm") {
			if a["AlarmName"] == "bluemed-"+env+"-backend-5xx-rate" {
				alarm = a
			}
		}
		if alarm == nil {
			t.Fatalf("app-%s: no 5xx-rate alarm for the backend", env)
		}
		queries := alarm["Metrics"].([]any)
		if len(queries) > 10 {
			t.Errorf("app-%s: %d metric queries, CloudWatch takes 10 at most", env, len(queries))
		}
		conn := map[string]string{} // target group -> query id
		var errorsExpr string
		for _, q := range queries {
			q := q.(map[string]any)
			if q["Id"] == "errors" {
				errorsExpr = q["Expression"].(string)
			}
			ms, _ := q["MetricStat"].(map[string]any)
			if ms == nil {
				continue
			}
			m := ms["Metric"].(map[string]any)
			if m["MetricName"] != "TargetConnectionErrorCount" {
				continue
			}
			for _, d := range m["Dimensions"].([]any) {
				if d := d.(map[string]any); d["Name"] == "TargetGroup" {
					conn[jsonOf(d["Value"])] = q["Id"].(string)
				}
			}
		}
		for _, c := range colors {
			tg := jsonOf(map[string]any{"Fn::GetAtt": []any{"Backend" + c + "TargetGroup", "TargetGroupFullName"}})
			qid, ok := conn[tg]
			if !ok {
				t.Errorf("app-%s: no TargetConnectionErrorCount of the %s target group (have %v)", env, c, conn)
				continue
			}
			if !strings.Contains(errorsExpr, "FILL("+qid+", 0)") {
				t.Errorf("app-%s: the errors expression %q leaves out %s's connection errors (%s)", env, errorsExpr, c, qid)
			}
		}
	}
}

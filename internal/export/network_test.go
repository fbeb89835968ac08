package export

import (
	"strings"
	"testing"
)

// TestIsolatedNetworkOption: with Network=isolated an environment gets a VPC
// of its own (seed 002) with a range no other environment defaults to, and
// everything placed in a VPC (load balancer, target groups, tasks, database)
// uses it; with the default (shared) the shared template's.
func TestIsolatedNetworkOption(t *testing.T) {
	tpl := bluemedTemplates(t)
	ranges := map[string]bool{vpcCIDR: true}
	for _, env := range []string{"staging", "production"} {
		m := tpl["app-"+env]
		params := m["Parameters"].(map[string]any)
		if p := params["Network"].(map[string]any); p["Default"] != "shared" || jsonOf(p["AllowedValues"]) != `["shared","isolated"]` {
			t.Errorf("app-%s: Network parameter = %v", env, p)
		}
		cidr := params["VpcCidr"].(map[string]any)["Default"].(string)
		if ranges[cidr] {
			t.Errorf("app-%s: VPC range %s is another VPC's", env, cidr)
		}
		ranges[cidr] = true
		res := m["Resources"].(map[string]any)
		for _, id := range []string{"Vpc", "PublicSubnetA", "PrivateSubnetB", "PrivateRouteTable", "EndpointEcrDkr", "EndpointLogs", "EndpointS3", "InternetGateway"} {
			if r, _ := res[id].(map[string]any); r == nil || r["Condition"] != "OwnVpc" {
				t.Errorf("app-%s: %s is not part of the isolated network: %v", env, id, r)
			}
		}
		// The private subnets have no route to the internet gateway.
		for id, rt := range resourcesOfType(m, "AWS::EC2::Route") {
			if jsonOf(rt["RouteTableId"]) != `{"Ref":"PublicRouteTable"}` {
				t.Errorf("app-%s: route %s is not on the public table", env, id)
			}
		}
		wantVpc := `{"Fn::If":["OwnVpc",{"Ref":"Vpc"},{"Fn::ImportValue":"bluemed-VpcId"}]}`
		for _, typ := range []string{"AWS::EC2::SecurityGroup", "AWS::ElasticLoadBalancingV2::TargetGroup"} {
			for id, p := range resourcesOfType(m, typ) {
				if id == "EndpointSecurityGroup" {
					continue // the isolated network's own
				}
				if got := jsonOf(p["VpcId"]); got != wantVpc {
					t.Errorf("app-%s: %s VpcId = %s", env, id, got)
				}
			}
		}
		lb := jsonOf(resourcesOfType(m, "AWS::ElasticLoadBalancingV2::LoadBalancer")["LoadBalancer"]["Subnets"])
		if !strings.Contains(lb, `{"Fn::If":["OwnVpc",{"Ref":"PublicSubnetA"},`) || strings.Contains(lb, "Private") {
			t.Errorf("app-%s: load balancer subnets = %s", env, lb)
		}
		if c := jsonOf(m["Conditions"].(map[string]any)["OwnVpc"]); c != `{"Fn::Equals":[{"Ref":"Network"},"isolated"]}` {
			t.Errorf("app-%s: OwnVpc = %s", env, c)
		}
		for id, svc := range resourcesOfType(m, "AWS::ECS::Service") {
			net := jsonOf(svc["NetworkConfiguration"])
			if !strings.Contains(net, `{"Fn::If":["OwnVpc",{"Ref":"PrivateSubnetA"},`) || strings.Contains(net, "PublicSubnet") {
				t.Errorf("app-%s: %s subnets = %s", env, id, net)
			}
		}
	}
}

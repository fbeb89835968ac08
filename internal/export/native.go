package export

import (
	"encoding/json"
	"math"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/ecs"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
)

// rawResource is a resource whose properties goformation's generated types
// do not have yet (ECS-native blue/green, 2025): the typed resource rendered
// to JSON, with the extra properties merged in.
type rawResource struct {
	typ  string
	body map[string]any // Type, Properties, DependsOn, ...
}

func (r *rawResource) AWSCloudFormationType() string { return r.typ }
func (r *rawResource) MarshalJSON() ([]byte, error)  { return json.Marshal(r.body) }

// withProperties renders a typed resource and sets extra properties on it.
func withProperties(res cloudformation.Resource, extra func(props map[string]any)) cloudformation.Resource {
	b, err := json.Marshal(res)
	if err != nil {
		panic("export: a typed resource does not marshal: " + err.Error()) // goformation's own types: cannot happen
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		panic("export: " + err.Error())
	}
	props, _ := body["Properties"].(map[string]any)
	extra(props)
	return &rawResource{typ: res.AWSCloudFormationType(), body: body}
}

// nativeService is the ECS service of an environment whose blue/green runs
// on ECS itself: deployment controller ECS with strategy BLUE_GREEN, CANARY
// or LINEAR (from strategy.traffic), the bake time, the circuit breaker and
// the alarms; the load balancer entry names the green (alternate) target
// group, the listener rules ECS moves and the role it moves them with.
func (g *gen) nativeService(env, name string, svc *ecs.Service, alarms, listeners []string) cloudformation.Resource {
	e := g.cfg.Environments[env]
	id := logicalID(name)
	strategy, percent, wait := e.Strategy.NativeStrategy()
	return withProperties(svc, func(p map[string]any) {
		dc := map[string]any{
			"Strategy":                 strategy,
			"BakeTimeInMinutes":        int(math.Ceil(e.Strategy.Bake.Std().Minutes())),
			"DeploymentCircuitBreaker": map[string]any{"Enable": true, "Rollback": true},
			"Alarms":                   map[string]any{"Enable": true, "Rollback": e.Strategy.AutoRollback.OnAlarm, "AlarmNames": alarms},
		}
		step := map[string]any{"BakeTimeInMinutes": int(math.Ceil(wait.Std().Minutes()))}
		switch strategy {
		case "CANARY":
			dc["CanaryConfiguration"] = map[string]any{"CanaryPercent": percent, "CanaryBakeTimeInMinutes": step["BakeTimeInMinutes"]}
		case "LINEAR":
			dc["LinearConfiguration"] = map[string]any{"StepPercent": percent, "StepBakeTimeInMinutes": step["BakeTimeInMinutes"]}
		}
		p["DeploymentConfiguration"] = dc
		adv := map[string]any{
			"AlternateTargetGroupArn": cloudformation.Ref(id + "GreenTargetGroup"),
			"ProductionListenerRule":  cloudformation.Ref(id + "ProdListenerRule"),
			"RoleArn":                 cloudformation.GetAtt("InfrastructureRole", "Arn"),
		}
		if len(listeners) > 1 {
			adv["TestListenerRule"] = cloudformation.Ref(id + "TestListenerRule")
		}
		lbs := p["LoadBalancers"].([]any)
		lbs[0].(map[string]any)["AdvancedConfiguration"] = adv
	})
}

// infrastructureRole is the role ECS assumes to move the listener rules of
// native blue/green deployments (AWS's managed policy for it).
func (g *gen) infrastructureRole(t *cloudformation.Template, env string) {
	t.Resources["InfrastructureRole"] = &iam.Role{
		AssumeRolePolicyDocument: assumeRole("ecs.amazonaws.com"),
		Description:              cloudformation.String("ECS moves the listener rules of " + g.project + "-" + env + " between blue and green"),
		ManagedPolicyArns:        []string{sub("arn:${AWS::Partition}:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers")},
		Tags:                     g.tags("dev.cutover.environment", env),
	}
	g.output(t, logicalID(env)+"InfrastructureRoleArn", roleArn("InfrastructureRole"))
}

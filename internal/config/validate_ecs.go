package config

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

var (
	launchTypes      = []string{LaunchTypeFargate, LaunchTypeEC2}
	blueGreenEngines = []string{BlueGreenCodeDeploy, BlueGreenECS}
	ecrSeverities    = []string{"INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"}
	lambdaHookEvents = []string{EventBeforeInstall, EventAfterInstall, EventAfterAllowTestTraffic, EventBeforeAllowTraffic, EventAfterAllowTraffic}
	digitsRe         = regexp.MustCompile(`^[0-9]+$`)
	envNameRe        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ecs checks the AWS settings of an environment: what platform ecs needs to
// deploy, and that they are only given where they are used.
func (v *validator) ecs(p string, e *Environment) {
	x := e.ECS
	if e.Platform != PlatformECS {
		if x != nil {
			v.add(p+".ecs", "is set but platform is %q (add platform: ecs, or remove ecs)", e.Platform)
		}
		return
	}
	strategyPath := p + ".strategy"
	p += ".ecs"
	if x == nil {
		v.add(p, "missing (platform ecs needs ecs: { cluster: NAME, services: { SERVICE: { service: ECS_SERVICE } } })")
		return
	}
	// With stack, what is not written here is read from the outputs of the
	// app stack `cutover export cloudformation` describes.
	fromStack := x.Stack != ""
	if x.Cluster == "" && !fromStack {
		v.add(p+".cluster", "missing (name the ECS cluster, such as cluster: production)")
	}
	if !slices.Contains(launchTypes, x.LaunchType) {
		v.add(p+".launch_type", "%q is not a launch type (write %s)", x.LaunchType, quoteList(launchTypes))
	}
	if x.Endpoint != "" {
		if u, err := url.Parse(x.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add(p+".endpoint", "%q is not a URL (write for example http://127.0.0.1:5000, or remove it to use AWS)", x.Endpoint)
		}
	}
	for _, event := range slices.Sorted(maps.Keys(x.LambdaHooks)) {
		switch {
		case slices.Contains(lambdaHookEvents, event):
		case x.BlueGreen == BlueGreenECS && slices.Contains(ECSLifecycleStages, event):
		case x.BlueGreen == BlueGreenECS:
			v.add(p+".lambda_hooks."+event, "%q is not a lifecycle event (write %s, or an ECS stage: %s)", event, quoteList(lambdaHookEvents), quoteList(ECSLifecycleStages))
		case slices.Contains(ECSLifecycleStages, event):
			v.add(p+".lambda_hooks."+event, "%q is an ECS-native lifecycle stage but blue/green runs through CodeDeploy (write %s, or set blue_green: ecs)", event, quoteList(lambdaHookEvents))
		default:
			v.add(p+".lambda_hooks."+event, "%q is not a CodeDeploy ECS lifecycle event (write %s)", event, quoteList(lambdaHookEvents))
		}
		if arn := x.LambdaHooks[event]; !strings.HasPrefix(arn, "arn:") {
			v.add(p+".lambda_hooks."+event, "%q is not an ARN (write the Lambda function ARN, such as arn:aws:lambda:eu-west-1:123456789012:function:smoke)", arn)
		}
	}
	if r := x.ECR; r != nil {
		if r.FailOnSeverity != "" && !slices.Contains(ecrSeverities, r.FailOnSeverity) {
			v.add(p+".ecr.fail_on_severity", "%q is not a severity (write %s)", r.FailOnSeverity, quoteList(ecrSeverities))
		}
		if r.LifecycleKeep < 0 {
			v.add(p+".ecr.lifecycle_keep", "%d must be at least 1 (or leave it out for 30)", r.LifecycleKeep)
		}
	}
	if x.LogGroup != "" && x.Region == "" {
		v.add(p+".region", "missing (the awslogs driver of log_group needs the region, such as region: eu-west-1)")
	}
	if len(x.SecurityGroups) > 0 && len(x.Subnets) == 0 {
		v.add(p+".subnets", "missing (security_groups apply to the tasks' subnets: list them)")
	}
	if x.LaunchType == LaunchTypeFargate && len(x.Subnets) == 0 && !fromStack {
		v.add(p+".subnets", "missing (Fargate tasks need awsvpc subnets: list the private subnet IDs)")
	}
	native := x.BlueGreen == BlueGreenECS
	switch {
	case x.BlueGreen != "" && !slices.Contains(blueGreenEngines, x.BlueGreen):
		v.add(p+".blue_green", "%q is not a blue/green engine (write %s)", x.BlueGreen, quoteList(blueGreenEngines))
	case native && e.Strategy.Type != StrategyBlueGreen:
		v.add(p+".blue_green", "is ecs but strategy is %q (set strategy.type: blue_green, or remove blue_green)", e.Strategy.Type)
	case native && x.CodeDeploy != nil:
		v.add(p+".codedeploy", "is set but blue_green is ecs (remove codedeploy, or write blue_green: codedeploy)")
	case native && x.RoleARN == "" && !fromStack:
		v.add(p+".role_arn", "missing (ECS-native blue/green needs the role ECS assumes to move the listener rules)")
	}
	if !native && x.RoleARN != "" {
		v.add(p+".role_arn", "is only used by blue_green: ecs (set blue_green: ecs, or remove role_arn)")
	}
	switch {
	case native:
	case e.Strategy.Type == StrategyBlueGreen && x.CodeDeploy == nil && !fromStack:
		v.add(p+".codedeploy", "missing (strategy blue_green on ecs runs through CodeDeploy: add codedeploy: { application: APP, deployment_group: GROUP }, or write blue_green: ecs)")
	case x.CodeDeploy != nil && e.Strategy.Type != StrategyBlueGreen:
		v.add(p+".codedeploy", "is set but strategy is %q (set strategy.type: blue_green, or remove codedeploy)", e.Strategy.Type)
	case x.CodeDeploy != nil:
		if x.CodeDeploy.Application == "" {
			v.add(p+".codedeploy.application", "missing (name the CodeDeploy application)")
		}
		if x.CodeDeploy.DeploymentGroup != "" && len(v.c.Services) > 1 {
			v.add(p+".codedeploy.deployment_group", "%q would deploy every service through one deployment group, but CodeDeploy has one group per ECS service (remove it and give each service its own services.SERVICE.deployment_group, or keep the default ENV-SERVICE)", x.CodeDeploy.DeploymentGroup)
		}
		groups := map[string]string{}
		for _, name := range v.c.ServiceNames() {
			if v.c.Services[name].Static != nil {
				continue // published to S3 and CloudFront, not deployed by CodeDeploy
			}
			group := x.DeploymentGroupOf(envOf(p), name)
			if other, dup := groups[group]; dup {
				v.add(p+".services."+name+".deployment_group", "%q is also the deployment group of service %s (each ECS service needs its own CodeDeploy deployment group)", group, other)
			}
			groups[group] = name
		}
	}
	if !(e.Strategy.Type == StrategyBlueGreen && !native) {
		for _, name := range slices.Sorted(maps.Keys(x.Services)) {
			if x.Services[name] != nil && x.Services[name].DeploymentGroup != "" {
				v.add(p+".services."+name+".deployment_group", "is only used by CodeDeploy blue/green (strategy.type: blue_green without blue_green: ecs): remove it")
			}
		}
	}
	// ECS-native CANARY and LINEAR take one percent and one wait, as the
	// canary and linear steps do; CodeDeploy only has its predefined configurations.
	if !native && e.Strategy.Type == StrategyBlueGreen && (e.Strategy.Canary != nil || e.Strategy.Linear != nil) {
		v.add(strategyPath, "custom canary or linear steps have no CodeDeploy predefined configuration (use traffic: Canary10Percent5Minutes, Linear10PercentEvery1Minute, ... on ecs, or blue_green: ecs)")
	}
	if !native && len(x.Alarms) > 0 && e.Strategy.Type == StrategyBlueGreen {
		v.add(p+".alarms", "are rolling-deployment alarms (for blue_green put the alarms on the CodeDeploy deployment group, or use blue_green: ecs, or remove them)")
	}
	v.ecsAllStatic(p)
	for _, name := range v.c.ServiceNames() {
		if x.Services[name] == nil && !fromStack && v.c.Services[name].Static != nil {
			v.add(p+".services", "no entry for static service %s (add services: { %s: { bucket: BUCKET, distribution: DISTRIBUTION_ID } })", name, name)
		} else if x.Services[name] == nil && !fromStack {
			v.add(p+".services", "no entry for service %s (add services: { %s: { service: ECS_SERVICE_NAME } })", name, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(x.Services)) {
		s, sp := x.Services[name], p+".services."+name
		if v.c.Services[name] == nil {
			v.add(sp, "%q is not a service of this file (write one of %s)", name, quoteList(v.c.ServiceNames()))
			continue
		}
		if v.ecsStatic(sp, name, s, fromStack); v.c.Services[name].Static != nil {
			continue
		}
		if s.CPU != "" && !digitsRe.MatchString(s.CPU) {
			v.add(sp+".cpu", "%q is not a number of CPU units (write for example \"256\")", s.CPU)
		}
		if s.Memory != "" && !digitsRe.MatchString(s.Memory) {
			v.add(sp+".memory", "%q is not a number of MiB (write for example \"512\")", s.Memory)
		}
		if native && e.Strategy.Type == StrategyBlueGreen {
			if s.TargetGroups.Blue == "" || s.TargetGroups.Green == "" {
				v.add(sp+".target_groups", "missing blue or green (ECS-native blue/green serves production from blue and the new revision from green: give both ARNs)")
			}
			if s.Rule == "" {
				v.add(sp+".rule", "missing (ECS-native blue/green moves a listener rule, not a listener's default action: give the production rule ARN)")
			}
		}
		if s.Listener != "" && s.Rule != "" {
			v.add(sp+".rule", "both listener and rule are set (keep one: the rule when the listener is shared)")
		}
		if s.TestListener != "" && s.TestRule != "" {
			v.add(sp+".test_rule", "both test_listener and test_rule are set (keep one)")
		}
		for _, k := range slices.Sorted(maps.Keys(s.Secrets)) {
			if !envNameRe.MatchString(k) {
				v.add(sp+".secrets", "%q is not a valid variable name (use letters, digits and _)", k)
			}
			if s.Secrets[k] == "" {
				v.add(fmt.Sprintf("%s.secrets.%s", sp, k), "empty (write the SSM parameter or Secrets Manager ARN)")
			}
		}
	}
}

// envOf returns the environment name of a path such as environments.production.ecs.
func envOf(path string) string {
	return strings.TrimSuffix(strings.TrimPrefix(path, "environments."), ".ecs")
}

// DeploymentGroupOf is the CodeDeploy deployment group of a service in
// environment env: its own deployment_group, else codedeploy.deployment_group
// (a file with one service), else ENV-SERVICE, the name `cutover export
// cloudformation` gives it.
func (x *ECS) DeploymentGroupOf(env, service string) string {
	if s := x.Services[service]; s != nil && s.DeploymentGroup != "" {
		return s.DeploymentGroup
	}
	if x.CodeDeploy != nil && x.CodeDeploy.DeploymentGroup != "" {
		return x.CodeDeploy.DeploymentGroup
	}
	return env + "-" + service
}

// NativeStrategy is the ECS-native deployment strategy of a blue/green
// strategy: BLUE_GREEN for all at once, CANARY (one step, then the rest) or
// LINEAR (equal steps), with the first step's percent and wait.
func (s Strategy) NativeStrategy() (name string, percent float64, wait Duration) {
	steps := s.TrafficSteps()
	switch {
	case len(steps) == 2:
		return "CANARY", float64(steps[0].Percent), steps[0].Wait
	case len(steps) > 2:
		return "LINEAR", float64(steps[0].Percent), steps[0].Wait
	}
	return "BLUE_GREEN", 0, 0
}

// ECSLifecycleStages are the lifecycle stages of an ECS-native blue/green
// deployment at which a Lambda hook can run (the ECS API's
// DeploymentLifecycleHookStage values; a test in internal/platform/ecs keeps
// them in step with the SDK).
var ECSLifecycleStages = []string{
	"RECONCILE_SERVICE", "PRE_SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT",
	"PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT",
}

// ecsStageOfEvent is where each CodeDeploy lifecycle event of an ECS
// deployment happens in an ECS-native blue/green deployment, so that one
// lambda_hooks definition serves both engines.
var ecsStageOfEvent = map[string]string{
	EventBeforeInstall:         "PRE_SCALE_UP",                  // green not started yet
	EventAfterInstall:          "POST_SCALE_UP",                 // green running, no traffic
	EventAfterAllowTestTraffic: "POST_TEST_TRAFFIC_SHIFT",       // green has all test traffic
	EventBeforeAllowTraffic:    "PRE_PRODUCTION_TRAFFIC_SHIFT",  // before production moves
	EventAfterAllowTraffic:     "POST_PRODUCTION_TRAFFIC_SHIFT", // production on green
}

// NativeHookStages groups lambda_hooks for ECS-native blue/green: each Lambda
// ARN (sorted) with the ECS lifecycle stages it runs at (CodeDeploy event
// names mapped, stage names kept) in the order ECS reaches them.
func (x *ECS) NativeHookStages() (arns []string, stages map[string][]string) {
	stages = map[string][]string{}
	for _, key := range slices.Sorted(maps.Keys(x.LambdaHooks)) {
		arn, stage := x.LambdaHooks[key], key
		if s, ok := ecsStageOfEvent[key]; ok {
			stage = s
		}
		if _, ok := stages[arn]; !ok {
			arns = append(arns, arn)
		}
		if !slices.Contains(stages[arn], stage) {
			stages[arn] = append(stages[arn], stage)
		}
	}
	slices.Sort(arns)
	for _, arn := range arns {
		slices.SortFunc(stages[arn], func(a, b string) int {
			return slices.Index(ECSLifecycleStages, a) - slices.Index(ECSLifecycleStages, b)
		})
	}
	return arns, stages
}

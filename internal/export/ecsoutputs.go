package export

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cutoverdev/cutover/internal/config"
)

// StackSecrets refuses, before a deploy, the ECS secrets of environment env
// that its exported app stack's execution role cannot read, when the tasks
// run with that role (environments.<env>.ecs.stack, and no
// execution_role_arn of cutover.yaml's own): each task would fail to start.
func StackSecrets(cfg *config.Config, env string) error {
	x := cfg.Environments[env].ECS
	if x == nil || x.Stack == "" || x.ExecutionRoleARN != "" {
		return nil
	}
	if problems := unreadableSecrets(cfg, env, cfg.ServiceNames()); len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// AppStackName is the stack name of an environment's app template.
func AppStackName(project, env string) string { return project + "-app-" + env }

// ECSFromOutputs returns the ecs settings of environment env with what
// cutover.yaml leaves unset read from the outputs of its app stack (the
// stack app-<env>.yaml describes, deployed under any name): cluster,
// subnets, task security group, execution and task roles, log group, and per
// service the ECS service, target groups and listener rules (for a static
// service its bucket and distribution); for CodeDeploy
// blue/green the application the pipeline stack creates (the project's name).
// Settings written in cutover.yaml win. This is the other half of the app
// template's outputs, so that export, stack and deploy are one path.
func ECSFromOutputs(cfg *config.Config, env string, outputs map[string]string) (*config.ECS, error) {
	e := cfg.Environments[env]
	if e == nil || e.ECS == nil {
		return nil, fmt.Errorf("environment %s has no ecs section", env)
	}
	x := *e.ECS
	ev := logicalID(env)
	var missing []string
	get := func(key string) string {
		v, ok := outputs[key]
		if !ok {
			missing = append(missing, key)
		}
		return v
	}
	set := func(dst *string, key string) {
		if v := get(key); *dst == "" {
			*dst = v
		}
	}
	set(&x.Cluster, ev+"ClusterName")
	set(&x.ExecutionRoleARN, ev+"ExecutionRoleArn")
	set(&x.LogGroup, ev+"LogGroupName")
	if subnets := get(ev + "Subnets"); len(x.Subnets) == 0 && subnets != "" {
		x.Subnets = strings.Split(subnets, ",")
	}
	if sg := get(ev + "TaskSecurityGroupId"); len(x.SecurityGroups) == 0 && sg != "" {
		x.SecurityGroups = []string{sg}
	}
	if e.Strategy.Type == config.StrategyBlueGreen && x.BlueGreenEngine() == config.BlueGreenCodeDeploy && x.CodeDeploy == nil {
		x.CodeDeploy = &config.CodeDeploy{Application: cfg.Project}
	}
	if e.Strategy.Type == config.StrategyBlueGreen && x.BlueGreenEngine() == config.BlueGreenECS {
		set(&x.RoleARN, ev+"InfrastructureRoleArn")
	}
	blueGreen := e.Strategy.Type == config.StrategyBlueGreen
	_, hasTest := outputs[ev+"TestListenerArn"]
	services := map[string]*config.ECSService{}
	for _, name := range cfg.ServiceNames() {
		s := &config.ECSService{}
		if own := x.Services[name]; own != nil {
			*s = *own
		}
		es := logicalID(env, name)
		if cfg.Services[name].Static != nil {
			// Served from S3 and CloudFront: deploy publishes its files.
			set(&s.Bucket, es+"SiteBucketName")
			set(&s.Distribution, es+"DistributionId")
			services[name] = s
			continue
		}
		set(&s.Service, es+"ServiceName")
		set(&s.TaskRoleARN, es+"TaskRoleArn")
		s.CPU, s.Memory = cmp.Or(s.CPU, taskCPU), cmp.Or(s.Memory, taskMemory)
		set(&s.TargetGroups.Blue, es+"BlueTargetGroupArn")
		if s.Listener == "" {
			set(&s.Rule, es+"ProdListenerRuleArn")
		}
		if blueGreen {
			set(&s.TargetGroups.Green, es+"GreenTargetGroupArn")
			if hasTest && s.TestListener == "" {
				set(&s.TestRule, es+"TestListenerRuleArn")
			}
		}
		services[name] = s
	}
	x.Services = services
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("the stack of environment %s lacks the outputs %s: deploy the app-%s template of `cutover export cloudformation` for this cutover.yaml (an older or foreign stack does not have them)",
			env, strings.Join(missing, ", "), env)
	}
	return &x, nil
}

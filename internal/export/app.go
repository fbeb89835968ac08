package export

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/cutoverdev/cutover/internal/config"
	"strconv"
	"strings"
	"time"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/ec2"
	"github.com/awslabs/goformation/v7/cloudformation/ecs"
	elb "github.com/awslabs/goformation/v7/cloudformation/elasticloadbalancingv2"
	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/cloudformation/logs"
	"github.com/awslabs/goformation/v7/cloudformation/sns"
)

// Ports of the load balancer. cutover.yaml's listen ports are those of the
// local proxy on 127.0.0.1; on AWS production traffic is HTTPS on 443 and the
// blue/green test listener HTTPS on 8443.
const (
	prodPort  = 443
	testPort  = 8443
	tlsPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
)

// Task size of the exported task definitions; cutover deploy registers its
// task definitions with the same size unless ecs.services.<name> sets one.
const (
	taskCPU    = "256"
	taskMemory = "512"
)

// app is one environment: its load balancer, cluster, services and alarms.
func (g *gen) app(env string) *cloudformation.Template {
	t := cloudformation.NewTemplate()
	e := g.cfg.Environments[env]
	t.Description = "cutover " + g.project + " environment " + env + " (" + e.Strategy.Type + "): ALB, ECS cluster, Fargate services, roles, alarms"
	t.Parameters["CertificateArn"] = cloudformation.Parameter{Type: "String", Description: cloudformation.String("ARN of the ACM certificate of the HTTPS listeners"),
		AllowedPattern: cloudformation.String("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$")}
	t.Parameters["DomainName"] = cloudformation.Parameter{Type: "String", Description: cloudformation.String("The domain users reach this environment at, which CertificateArn covers and whose DNS points at the load balancer (the pipeline's Verify checks it)"),
		AllowedPattern: cloudformation.String(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)}
	t.Parameters["ImageTag"] = cloudformation.Parameter{Type: "String", Default: "initial",
		Description: cloudformation.String("Bootstrap only: tag of the images pushed before the first stack deploy (see cutover export cloudformation --help). Later releases register task definitions by digest; keep this value on stack updates")}
	r := t.Resources
	prefix := g.project + "-" + env
	g.isolatedNetwork(t, env)

	// Network: the ALB is reachable from the internet on its two HTTPS ports;
	// tasks only from the ALB.
	r["LoadBalancerSecurityGroup"] = &ec2.SecurityGroup{
		GroupDescription: "HTTPS to the " + prefix + " load balancer",
		VpcId:            cloudformation.String(g.vpcID()),
		SecurityGroupIngress: []ec2.SecurityGroup_Ingress{
			{IpProtocol: "tcp", FromPort: cloudformation.Int(prodPort), ToPort: cloudformation.Int(prodPort), CidrIp: cloudformation.String("0.0.0.0/0"), Description: cloudformation.String("production HTTPS listener")},
		},
		SecurityGroupEgress: []ec2.SecurityGroup_Egress{{IpProtocol: "tcp", FromPort: cloudformation.Int(1), ToPort: cloudformation.Int(65535),
			CidrIp: cloudformation.String(g.vpcRange()), Description: cloudformation.String("to tasks in the VPC")}},
		Tags: g.tags("dev.cutover.environment", env),
	}
	testListener := g.testListener(env)
	if testListener {
		sg := r["LoadBalancerSecurityGroup"].(*ec2.SecurityGroup)
		// The test listener is for the test traffic hooks (Lambda functions
		// in the VPC), not for the public.
		sg.SecurityGroupIngress = append(sg.SecurityGroupIngress, ec2.SecurityGroup_Ingress{IpProtocol: "tcp", FromPort: cloudformation.Int(testPort), ToPort: cloudformation.Int(testPort),
			CidrIp: cloudformation.String(g.vpcRange()), Description: cloudformation.String("test listener, from inside the VPC only")})
	}
	var ingress []ec2.SecurityGroup_Ingress
	for _, name := range g.containers() {
		p := g.cfg.Services[name].Port
		if slices.ContainsFunc(ingress, func(i ec2.SecurityGroup_Ingress) bool { return *i.FromPort == p }) {
			continue
		}
		ingress = append(ingress, ec2.SecurityGroup_Ingress{IpProtocol: "tcp", FromPort: cloudformation.Int(p), ToPort: cloudformation.Int(p),
			SourceSecurityGroupId: cloudformation.RefPtr("LoadBalancerSecurityGroup"), Description: cloudformation.String("from the load balancer to port " + strconv.Itoa(p))})
	}
	r["TaskSecurityGroup"] = &ec2.SecurityGroup{
		GroupDescription:     "Fargate tasks of " + prefix,
		VpcId:                cloudformation.String(g.vpcID()),
		SecurityGroupIngress: ingress,
		SecurityGroupEgress: []ec2.SecurityGroup_Egress{{IpProtocol: "tcp", FromPort: cloudformation.Int(443), ToPort: cloudformation.Int(443),
			CidrIp: cloudformation.String("0.0.0.0/0"), Description: cloudformation.String("HTTPS to the VPC endpoints and the S3 gateway endpoint (no NAT: nothing else is routable)")}},
		Tags: g.tags("dev.cutover.environment", env),
	}

	r["LoadBalancer"] = &elb.LoadBalancer{
		Type: cloudformation.String("application"), Scheme: cloudformation.String("internet-facing"),
		Subnets:        g.subnets("Public"),
		SecurityGroups: []string{cloudformation.Ref("LoadBalancerSecurityGroup")},
		LoadBalancerAttributes: []elb.LoadBalancer_LoadBalancerAttribute{
			{Key: cloudformation.String("routing.http.drop_invalid_header_fields.enabled"), Value: cloudformation.String("true")},
			{Key: cloudformation.String("deletion_protection.enabled"), Value: cloudformation.String("true")},
		},
		Tags:                      g.tags("dev.cutover.environment", env),
		AWSCloudFormationMetadata: skip("CKV_AWS_91", "Access logs need an S3 bucket whose policy names the regional ELB account; cutover's alarms use CloudWatch metrics instead. Enable access_logs.s3 per account if required."),
	}
	listeners := []string{"ProdListener"}
	if testListener {
		listeners = append(listeners, "TestListener")
	}
	for i, l := range listeners {
		r[l] = &elb.Listener{
			LoadBalancerArn: cloudformation.Ref("LoadBalancer"), Port: cloudformation.Int([]int{prodPort, testPort}[i]),
			Protocol: cloudformation.String("HTTPS"), SslPolicy: cloudformation.String(tlsPolicy),
			Certificates: []elb.Listener_Certificate{{CertificateArn: cloudformation.RefPtr("CertificateArn")}},
			DefaultActions: []elb.Listener_Action{{Type: "fixed-response",
				FixedResponseConfig: &elb.Listener_FixedResponseConfig{StatusCode: "404", ContentType: cloudformation.String("text/plain"), MessageBody: cloudformation.String("no route")}}},
		}
	}

	r["LogGroup"] = &logs.LogGroup{LogGroupName: cloudformation.String("/cutover/" + g.project + "/" + env), RetentionInDays: cloudformation.Int(365),
		KmsKeyId: cloudformation.String(g.imp("LogsKeyArn")), Tags: g.tags("dev.cutover.environment", env)}
	r["AlarmTopic"] = &sns.Topic{TopicName: cloudformation.String(prefix + "-alarms"), KmsMasterKeyId: cloudformation.String(g.imp("LogsKeyArn")), Tags: g.tags("dev.cutover.environment", env)}
	g.subscribeNotifier(t, "AlarmTopic")
	r["Cluster"] = &ecs.Cluster{ClusterName: cloudformation.String(prefix),
		ClusterSettings: []ecs.Cluster_ClusterSettings{{Name: cloudformation.String("containerInsights"), Value: cloudformation.String("enabled")}},
		Tags:            g.tags("dev.cutover.environment", env)}
	g.roles(t, env)
	g.database(t, env)
	if g.native(env) {
		g.infrastructureRole(t, env)
	}

	for prio, name := range g.routeOrder() {
		if g.static(name) {
			g.staticSite(t, env, name)
			continue
		}
		g.service(t, env, name, prio+1, listeners)
	}
	g.dashboard(t, env)
	g.canaries(t, env)
	g.output(t, logicalID(env)+"ClusterName", cloudformation.Ref("Cluster"))
	g.output(t, logicalID(env)+"ProdListenerArn", cloudformation.Ref("ProdListener"))
	if testListener {
		g.output(t, logicalID(env)+"TestListenerArn", cloudformation.Ref("TestListener"))
	}
	g.output(t, logicalID(env)+"DomainName", cloudformation.Ref("DomainName"))
	// What cutover deploy reads from this stack (environments.<env>.ecs.stack): see ecsoutputs.go.
	g.output(t, logicalID(env)+"LogGroupName", cloudformation.Ref("LogGroup"))
	g.output(t, logicalID(env)+"TaskSecurityGroupId", cloudformation.Ref("TaskSecurityGroup"))
	g.output(t, logicalID(env)+"Subnets", g.ownOrShared(cloudformation.Join(",", g.privateSubnets()), "PrivateSubnets")) // cutover deploy reads one stack
	g.output(t, logicalID(env)+"LoadBalancerArn", cloudformation.Ref("LoadBalancer"))
	g.output(t, logicalID(env)+"AlarmTopicArn", cloudformation.Ref("AlarmTopic"))
	g.output(t, logicalID(env)+"ExecutionRoleArn", roleArn("ExecutionRole"))
	return t
}

// testListener says whether an environment gets the blue/green test
// listener: only when something sends test traffic to it, the test traffic
// hooks of environments.<env>.ecs.lambda_hooks. An unused listener on an
// internet-facing load balancer would only be attack surface.
func (g *gen) testListener(env string) bool {
	e := g.cfg.Environments[env]
	if !g.blueGreen(env) || e.ECS == nil {
		return false
	}
	for hook := range e.ECS.LambdaHooks {
		if hook == config.EventAfterAllowTestTraffic || hook == "TEST_TRAFFIC_SHIFT" || hook == "POST_TEST_TRAFFIC_SHIFT" {
			return true
		}
	}
	return false
}

// routeOrder sorts services so that the most specific route gets the lowest
// (first evaluated) rule priority: host and path, then host, then longer paths.
func (g *gen) routeOrder() []string {
	names := g.cfg.ServiceNames()
	score := func(n string) (int, int) {
		rt := g.cfg.Services[n].Route
		s := 0
		if rt.Host != "" {
			s = 2
		}
		if rt.PathPrefix != "" && rt.PathPrefix != "/" {
			s++
		}
		return s, len(rt.PathPrefix)
	}
	slices.SortStableFunc(names, func(a, b string) int {
		sa, la := score(a)
		sb, lb := score(b)
		return cmp.Or(cmp.Compare(sb, sa), cmp.Compare(lb, la))
	})
	return names
}

// roles are the execution role (pull images, write logs, read the
// environment's secrets) shared by the environment's tasks.
func (g *gen) roles(t *cloudformation.Template, env string) {
	var repos []any
	for _, svc := range g.containers() {
		repos = append(repos, g.imp("Repository"+logicalID(svc)+"Arn"))
	}
	secrets := "/cutover/" + g.project + "/" + env + "/"
	t.Resources["ExecutionRole"] = &iam.Role{
		AssumeRolePolicyDocument: assumeRole("ecs-tasks.amazonaws.com"),
		Policies: []iam.Role_Policy{{PolicyName: "pull-log-secrets", PolicyDocument: policy(
			// GetAuthorizationToken is account-wide: ECR does not accept a resource for it.
			allow([]string{"ecr:GetAuthorizationToken"}, "*"),
			allow([]string{"ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"}, repos...),
			allow([]string{"kms:Decrypt"}, g.imp("ArtifactsKeyArn")),
			allow([]string{"logs:CreateLogStream", "logs:PutLogEvents"}, sub("${LogGroup.Arn}")),
			allow([]string{"ssm:GetParameters"}, sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"+secrets+"*")),
			allow([]string{"secretsmanager:GetSecretValue"}, sub("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:cutover/"+g.project+"/"+env+"/*")),
		)}},
		Tags: g.tags("dev.cutover.environment", env),
	}
}

// secrets are the service's ECS secrets in the environment
// (config.ECSSecrets: variable -> valueFrom), which ECS reads with the execution role into the container's environment.
func (g *gen) secrets(env, name string) map[string]string { return g.cfg.ECSSecrets(env, name) }

// checkSecrets refuses a secret the exported execution role cannot read
// (unreadableSecrets). Without this check the stack deploys, and every task
// fails to start with ResourceInitializationError.
func (g *gen) checkSecrets() error {
	var problems []string
	for _, env := range g.envOrder() {
		problems = append(problems, unreadableSecrets(g.cfg, env, g.containers())...)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// unreadableSecrets names the ECS secrets of services in env that the
// exported execution role cannot read: it reads SSM parameters under
// /cutover/PROJECT/ENV/, Secrets Manager secrets named
// cutover/PROJECT/ENV/... and the database's (rds!db-..., when the stack
// has one), nothing else (least privilege).
func unreadableSecrets(cfg *config.Config, env string, services []string) []string {
	var problems []string
	for _, name := range services {
		secrets := cfg.ECSSecrets(env, name)
		for _, k := range slices.Sorted(maps.Keys(secrets)) {
			if !readableSecret(cfg.Project, env, secrets[k]) {
				problems = append(problems, fmt.Sprintf("environments.%s.ecs.services.%s.secrets.%s: %s is not readable by the exported execution role, which reads SSM parameters under /cutover/%s/%s/ and Secrets Manager secrets named cutover/%s/%s/... (and the database's, rds!db-...); keep the secret there (a parameter name such as /cutover/%s/%s/%s, or the secret's full ARN)",
					env, name, k, secrets[k], cfg.Project, env, cfg.Project, env, cfg.Project, env, k))
			}
		}
	}
	return problems
}

// readableSecret: a parameter's name or ARN, or a secret's ARN (with its
// JSON key, version stage or version ID after it), under the environment's
// prefix, or the database's secret.
func readableSecret(project, env, valueFrom string) bool {
	prefix := "cutover/" + project + "/" + env + "/"
	if rest, ok := strings.CutPrefix(valueFrom, "/"+prefix); ok {
		return rest != ""
	}
	parts := strings.SplitN(valueFrom, ":", 6) // arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE
	if len(parts) != 6 || parts[0] != "arn" {
		return false
	}
	switch parts[2] {
	case "ssm":
		rest, ok := strings.CutPrefix(parts[5], "parameter/"+prefix)
		return ok && rest != ""
	case "secretsmanager":
		if strings.HasPrefix(parts[5], "secret:rds!db-") {
			return true // the database's, read with Database=postgres (database.go)
		}
		rest, ok := strings.CutPrefix(parts[5], "secret:"+prefix)
		return ok && rest != ""
	}
	return false
}

// service adds one service's target groups, listener rules, task definition,
// ECS service and alarms.
func (g *gen) service(t *cloudformation.Template, env, name string, priority int, listeners []string) {
	r := t.Resources
	s := g.cfg.Services[name]
	e := g.cfg.Environments[env]
	id := logicalID(name)
	bg := g.blueGreen(env)

	colors := []string{"Blue"}
	if bg {
		colors = append(colors, "Green")
	}
	for _, c := range colors {
		r[id+c+"TargetGroup"] = g.targetGroup(env, name, c)
	}
	for i, l := range listeners {
		var conds []elb.ListenerRule_RuleCondition
		if s.Route.Host != "" {
			conds = append(conds, elb.ListenerRule_RuleCondition{Field: cloudformation.String("host-header"), HostHeaderConfig: &elb.ListenerRule_HostHeaderConfig{Values: []string{s.Route.Host}}})
		}
		if p := strings.TrimSuffix(s.Route.PathPrefix, "/"); p != "" {
			conds = append(conds, elb.ListenerRule_RuleCondition{Field: cloudformation.String("path-pattern"), PathPatternConfig: &elb.ListenerRule_PathPatternConfig{Values: []string{p, p + "/*"}}})
		} else if len(conds) == 0 {
			conds = append(conds, elb.ListenerRule_RuleCondition{Field: cloudformation.String("path-pattern"), PathPatternConfig: &elb.ListenerRule_PathPatternConfig{Values: []string{"/*"}}})
		}
		// Both listeners start on blue; CodeDeploy moves the test and then the
		// production listener to green during a deployment.
		action := elb.ListenerRule_Action{Type: "forward", TargetGroupArn: cloudformation.RefPtr(id + "BlueTargetGroup")}
		if g.native(env) {
			// ECS-native blue/green moves the weights of a rule that
			// forwards to both groups; it starts all on blue.
			action = elb.ListenerRule_Action{Type: "forward", ForwardConfig: &elb.ListenerRule_ForwardConfig{TargetGroups: []elb.ListenerRule_TargetGroupTuple{
				{TargetGroupArn: cloudformation.RefPtr(id + "BlueTargetGroup"), Weight: cloudformation.Int(100)},
				{TargetGroupArn: cloudformation.RefPtr(id + "GreenTargetGroup"), Weight: cloudformation.Int(0)},
			}}}
		}
		r[id+l+"Rule"] = &elb.ListenerRule{ListenerArn: cloudformation.RefPtr(l), Priority: priority + 100*i, Conditions: conds,
			Actions: []elb.ListenerRule_Action{action}}
		g.output(t, logicalID(env, name)+l+"RuleArn", cloudformation.Ref(id+l+"Rule"))
	}

	container := ecs.TaskDefinition_ContainerDefinition{
		Name:                   name,
		Image:                  sub("${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/" + g.project + "/" + name + ":${ImageTag}"),
		Essential:              cloudformation.Bool(true),
		ReadonlyRootFilesystem: cloudformation.Bool(true),
		PortMappings:           []ecs.TaskDefinition_PortMapping{{ContainerPort: cloudformation.Int(s.Port), Protocol: cloudformation.String("tcp")}},
		StopTimeout:            cloudformation.Int(min(max(int(s.StopTimeout.Std()/time.Second), 2), 120)),
		LogConfiguration: &ecs.TaskDefinition_LogConfiguration{LogDriver: "awslogs", Options: map[string]string{
			"awslogs-group": cloudformation.Ref("LogGroup"), "awslogs-region": cloudformation.Ref("AWS::Region"), "awslogs-stream-prefix": name}},
	}
	// On a CODE_DEPLOY service this task definition is the bootstrap only:
	// CodeDeploy refuses a task definition change made by CloudFormation, so
	// it holds nothing a later cutover.yaml edit changes (environment
	// variables reach the releases' task definitions, which cutover deploy
	// and the pipeline's Build register). Rolling services keep them here, as
	// the pipeline's ECS deploy action only swaps the image.
	if !g.viaCodeDeploy(env) {
		for _, k := range slices.Sorted(maps.Keys(s.Env)) {
			container.Environment = append(container.Environment, ecs.TaskDefinition_KeyValuePair{Name: cloudformation.String(k), Value: cloudformation.String(s.Env[k])})
		}
		secrets := g.secrets(env, name)
		for _, k := range slices.Sorted(maps.Keys(secrets)) {
			container.Secrets = append(container.Secrets, ecs.TaskDefinition_Secret{Name: k, ValueFrom: secrets[k]})
		}
	}
	r[id+"TaskRole"] = &iam.Role{AssumeRolePolicyDocument: assumeRole("ecs-tasks.amazonaws.com"), Description: cloudformation.String("the " + name + " application's own AWS permissions (none by default)"),
		Tags: g.tags("dev.cutover.environment", env, "dev.cutover.service", name)}
	r[id+"TaskDefinition"] = &ecs.TaskDefinition{
		Family: cloudformation.String(g.project + "-" + env + "-" + name), RequiresCompatibilities: []string{"FARGATE"},
		NetworkMode: cloudformation.String("awsvpc"), Cpu: cloudformation.String(taskCPU), Memory: cloudformation.String(taskMemory),
		ExecutionRoleArn: cloudformation.GetAttPtr("ExecutionRole", "Arn"), TaskRoleArn: cloudformation.GetAttPtr(id+"TaskRole", "Arn"),
		ContainerDefinitions: []ecs.TaskDefinition_ContainerDefinition{container},
		Tags:                 g.tags("dev.cutover.environment", env, "dev.cutover.service", name),
	}

	svc := &ecs.Service{
		ServiceName: cloudformation.String(name), Cluster: cloudformation.RefPtr("Cluster"), LaunchType: cloudformation.String("FARGATE"),
		TaskDefinition: cloudformation.RefPtr(id + "TaskDefinition"), DesiredCount: cloudformation.Int(s.DesiredCount),
		HealthCheckGracePeriodSeconds: cloudformation.Int(max(int(s.Health.GracePeriod.Std()/time.Second), 0)),
		LoadBalancers:                 []ecs.Service_LoadBalancer{{ContainerName: cloudformation.String(name), ContainerPort: cloudformation.Int(s.Port), TargetGroupArn: cloudformation.RefPtr(id + "BlueTargetGroup")}},
		NetworkConfiguration: &ecs.Service_NetworkConfiguration{AwsvpcConfiguration: &ecs.Service_AwsVpcConfiguration{
			AssignPublicIp: cloudformation.String("DISABLED"), SecurityGroups: []string{cloudformation.Ref("TaskSecurityGroup")},
			Subnets: g.privateSubnets()}},
		PropagateTags:              cloudformation.String("SERVICE"),
		Tags:                       g.tags("dev.cutover.environment", env, "dev.cutover.service", name),
		AWSCloudFormationDependsOn: []string{id + "ProdListenerRule"},
	}
	alarms := g.alarms(t, env, name)
	if g.native(env) {
		svc.DeploymentController = &ecs.Service_DeploymentController{Type: cloudformation.String("ECS")}
		svc.AWSCloudFormationDependsOn = nil // the advanced configuration refers to the rule
		r[id+"Service"] = g.nativeService(env, name, svc, alarms, listeners)
		g.serviceOutputs(t, env, name, colors)
		return
	}
	if bg {
		svc.DeploymentController = &ecs.Service_DeploymentController{Type: cloudformation.String("CODE_DEPLOY")}
	} else {
		svc.DeploymentController = &ecs.Service_DeploymentController{Type: cloudformation.String("ECS")}
		svc.DeploymentConfiguration = &ecs.Service_DeploymentConfiguration{
			MinimumHealthyPercent: cloudformation.Int(e.Strategy.MinimumHealthyPercent), MaximumPercent: cloudformation.Int(e.Strategy.MaximumPercent),
			DeploymentCircuitBreaker: &ecs.Service_DeploymentCircuitBreaker{Enable: e.Strategy.CircuitBreaker.Enable, Rollback: e.Strategy.CircuitBreaker.Rollback},
			Alarms:                   &ecs.Service_DeploymentAlarms{Enable: true, Rollback: e.Strategy.AutoRollback.OnAlarm, AlarmNames: alarms},
		}
	}
	r[id+"Service"] = svc
	g.serviceOutputs(t, env, name, colors)
}

// serviceOutputs are what cutover deploy reads of a service (ECSFromOutputs).
func (g *gen) serviceOutputs(t *cloudformation.Template, env, name string, colors []string) {
	id := logicalID(name)
	g.output(t, logicalID(env, name)+"ServiceName", name)
	for _, c := range colors {
		g.output(t, logicalID(env, name)+c+"TargetGroupArn", cloudformation.Ref(id+c+"TargetGroup"))
	}
	g.output(t, logicalID(env, name)+"TaskRoleArn", roleArn(id+"TaskRole"))
}

// targetGroup carries the service's health check from cutover.yaml, clamped
// to the ranges the ALB accepts (cutover's local proxy checks far more often
// than an ALB can).
func (g *gen) targetGroup(env, name, color string) *elb.TargetGroup {
	s := g.cfg.Services[name]
	h := s.Health
	interval := min(max(int(h.Interval.Std()/time.Second), 5), 300)
	timeout := min(max(int(h.Timeout.Std()/time.Second), 2), 120, interval-1)
	codes := cmp.Or(h.SuccessCodes, "200-399")
	return &elb.TargetGroup{
		TargetType: cloudformation.String("ip"), Protocol: cloudformation.String("HTTP"), Port: cloudformation.Int(s.Port),
		VpcId:                      cloudformation.String(g.vpcID()),
		HealthCheckEnabled:         cloudformation.Bool(true),
		HealthCheckPath:            cloudformation.String(cmp.Or(h.Path, "/")),
		HealthCheckIntervalSeconds: cloudformation.Int(interval), HealthCheckTimeoutSeconds: cloudformation.Int(timeout),
		HealthyThresholdCount:   cloudformation.Int(min(max(h.HealthyThreshold, 2), 10)),
		UnhealthyThresholdCount: cloudformation.Int(min(max(h.UnhealthyThreshold, 2), 10)),
		Matcher:                 &elb.TargetGroup_Matcher{HttpCode: cloudformation.String(codes)},
		TargetGroupAttributes: []elb.TargetGroup_TargetGroupAttribute{{Key: cloudformation.String("deregistration_delay.timeout_seconds"),
			Value: cloudformation.String(strconv.Itoa(min(max(int(s.DeregistrationDelay.Std()/time.Second), 0), 3600)))}},
		Tags: g.tags("dev.cutover.environment", env, "dev.cutover.service", name, "dev.cutover.color", strings.ToLower(color)),
	}
}

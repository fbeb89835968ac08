// Package config is the model of cutover.yaml: the typed configuration, its strict
// decoding with line:column positions, the defaults (filled in one place, defaults.go),
// validation that reports every problem at once, the JSON Schema generated from the same
// types, and `cutover init` from a docker-compose file.
//
// Every other package reads a *Config returned by Load or Parse, which is already defaulted
// and valid; they never need to re-check what Validate checks.
package config

import (
	"maps"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Config is a whole cutover.yaml.
type Config struct {
	Version      int                     `yaml:"version" json:"version" jsonschema:"required,enum=1" jsonschema_description:"Version of the file format. Always 1."`
	Project      string                  `yaml:"project" json:"project" jsonschema:"required" jsonschema_description:"Project name: lowercase letters, digits and dashes. Used in container names and labels."`
	Services     map[string]*Service     `yaml:"services" json:"services" jsonschema:"required" jsonschema_description:"Services by name. Every environment runs all of them."`
	Environments map[string]*Environment `yaml:"environments" json:"environments" jsonschema:"required" jsonschema_description:"Environments by name, such as staging and production."`
	Pipeline     *Pipeline               `yaml:"pipeline,omitempty" json:"pipeline,omitempty" jsonschema_description:"Pipeline stages. Optional."`
	Retention    Retention               `yaml:"retention,omitempty" json:"retention,omitzero" jsonschema_description:"How many revisions' images cutover keeps. Optional."`

	// File is the path the configuration was read from, as given to Load or Parse.
	File string `yaml:"-" json:"-"`

	// dir is where build contexts are resolved; empty when the configuration came from
	// bytes without a directory, in which case filesystem checks are skipped.
	dir string
	// root is the workspace every path must stay in (LoadWithin); Dir when empty.
	root string
	// keys maps a field path ("services.backend.port") to where it is written in the source.
	// It gives problems their line:col and tells defaults apart from explicit zero values.
	keys map[string]position
}

// Retention is how many revisions' images cutover keeps on the machine: after each
// successful local deployment, and on `cutover prune`, the images of older revisions
// are removed.
type Retention struct {
	Revisions int `yaml:"revisions,omitempty" json:"revisions,omitempty" jsonschema:"minimum=2,default=5" jsonschema_description:"Keep the images of the newest N revisions of each environment (at least 2, so a rollback to the previous revision needs no rebuild)."`
}

// DefaultRetainedRevisions is Retention.Revisions when it is not set.
const DefaultRetainedRevisions = 5

// Service is one container image run behind the load balancer.
type Service struct {
	Build  *Build            `yaml:"build,omitempty" json:"build,omitempty" jsonschema_description:"How to build the image. Exactly one of build or image."`
	Image  string            `yaml:"image,omitempty" json:"image,omitempty" jsonschema_description:"A prebuilt image reference. Exactly one of build or image."`
	Port   int               `yaml:"port" json:"port" jsonschema:"required,minimum=1,maximum=65535" jsonschema_description:"The port the container listens on."`
	Health HealthCheck       `yaml:"health,omitempty" json:"health,omitzero"`
	Route  Route             `yaml:"route,omitempty" json:"route,omitzero"`
	Env    map[string]string `yaml:"env,omitempty" json:"env,omitempty" jsonschema_description:"Environment variables of the container."`
	// Secrets are names only: their values never come from this file.
	Secrets             []string `yaml:"secrets,omitempty" json:"secrets,omitempty" jsonschema_description:"Environment variables of the container whose values are secrets, by name only. On platform local each environment's values are set with cutover secrets set ENV NAME (kept in a 0600 file under CUTOVER_HOME, never in cutover.yaml, the state store or the image) and given to the tasks when they start; on ecs ECS reads each from environments.ENV.ecs.services.NAME.secrets, else from the SSM parameter /cutover/PROJECT/ENV/NAME."`
	DesiredCount        int      `yaml:"desired_count" json:"desired_count" jsonschema:"minimum=0,default=1" jsonschema_description:"Number of tasks (containers) to run."`
	DeregistrationDelay Duration `yaml:"deregistration_delay,omitempty" json:"deregistration_delay,omitempty" jsonschema:"default=5s" jsonschema_description:"How long a removed target keeps finishing its requests before it is stopped. 5s by default: far less than the ALB's 300s, because a local deploy should not wait minutes."`
	StopTimeout         Duration `yaml:"stop_timeout,omitempty" json:"stop_timeout,omitempty" jsonschema:"default=10s" jsonschema_description:"Time between SIGTERM and SIGKILL when a container stops."`
	Static              *Static  `yaml:"static,omitempty" json:"static,omitempty" jsonschema_description:"On AWS, serve this service's built files from a private S3 bucket through CloudFront instead of running its container on ECS (cutover export cloudformation). Locally the container still runs."`
}

// Static is the S3 + CloudFront variant of a service in the exported
// CloudFormation: the pipeline runs build.commands and uploads dir.
type Static struct {
	Dir string `yaml:"dir" json:"dir" jsonschema:"required" jsonschema_description:"Directory of the built files (index.html and assets), relative to build.context, such as dist."`
	SPA bool   `yaml:"spa,omitempty" json:"spa,omitempty" jsonschema_description:"Single-page application: a path with no file answers index.html with status 200, so client-side routes load."`
}

// Build says how to build a service's image from the repository.
type Build struct {
	Context    string            `yaml:"context,omitempty" json:"context,omitempty" jsonschema_description:"Build context directory, relative to cutover.yaml."`
	Dockerfile string            `yaml:"dockerfile,omitempty" json:"dockerfile,omitempty" jsonschema:"default=Dockerfile" jsonschema_description:"Dockerfile path, relative to the context."`
	Commands   []string          `yaml:"commands,omitempty" json:"commands,omitempty" jsonschema_description:"Shell commands run on the host in the context directory before the image build, for example to build a static binary for a FROM scratch image."`
	Args       map[string]string `yaml:"args,omitempty" json:"args,omitempty" jsonschema_description:"Build arguments."`
}

// HealthCheck is how the load balancer decides a task may receive traffic.
type HealthCheck struct {
	Path               string   `yaml:"path,omitempty" json:"path,omitempty" jsonschema:"default=/" jsonschema_description:"HTTP path probed on the container port."`
	Interval           Duration `yaml:"interval,omitempty" json:"interval,omitempty" jsonschema:"default=5s"`
	Timeout            Duration `yaml:"timeout,omitempty" json:"timeout,omitempty" jsonschema:"default=2s" jsonschema_description:"Must be shorter than the interval."`
	HealthyThreshold   int      `yaml:"healthy_threshold,omitempty" json:"healthy_threshold,omitempty" jsonschema:"minimum=1,default=2"`
	UnhealthyThreshold int      `yaml:"unhealthy_threshold,omitempty" json:"unhealthy_threshold,omitempty" jsonschema:"minimum=1,default=3"`
	SuccessCodes       string   `yaml:"success_codes,omitempty" json:"success_codes,omitempty" jsonschema:"default=200-399,pattern=^[0-9]{3}(-[0-9]{3})?(\\,[0-9]{3}(-[0-9]{3})?)*$" jsonschema_description:"HTTP codes counted as healthy, such as 200 or 200,204 or 200-299."`
	GracePeriod        Duration `yaml:"grace_period,omitempty" json:"grace_period,omitempty" jsonschema_description:"Failed checks are ignored this long after a task starts."`
}

// Route selects the requests that go to a service. The most specific route wins.
type Route struct {
	Host       string `yaml:"host,omitempty" json:"host,omitempty" jsonschema_description:"Host name to match, without port."`
	PathPrefix string `yaml:"path_prefix,omitempty" json:"path_prefix,omitempty" jsonschema:"pattern=^/" jsonschema_description:"Path prefix to match; starts with /."`
}

// Environment is one place the services run, such as staging or production.
type Environment struct {
	Platform    string    `yaml:"platform,omitempty" json:"platform,omitempty" jsonschema:"enum=local,enum=ecs,default=local"`
	Branch      string    `yaml:"branch,omitempty" json:"branch,omitempty" jsonschema_description:"Git branch whose pushes deploy here."`
	PromoteFrom string    `yaml:"promote_from,omitempty" json:"promote_from,omitempty" jsonschema_description:"Another environment whose deployed revision is promoted here."`
	Listen      Listen    `yaml:"listen,omitempty" json:"listen,omitzero"`
	Proxy       *Edge     `yaml:"proxy,omitempty" json:"proxy,omitempty" jsonschema_description:"Limits and trusted proxies of the local load balancer's listeners."`
	Strategy    Strategy  `yaml:"strategy,omitempty" json:"strategy,omitzero"`
	Hooks       Hooks     `yaml:"hooks,omitempty" json:"hooks,omitzero"`
	Approval    *Approval `yaml:"approval,omitempty" json:"approval,omitempty"`
	ECS         *ECS      `yaml:"ecs,omitempty" json:"ecs,omitempty" jsonschema_description:"AWS settings, required when platform is ecs."`
}

// Listen holds the local load balancer listeners of an environment: the
// production listener on Address:Port (HTTPS with TLS), the test listener
// on 127.0.0.1:TestPort (always loopback, plain HTTP: it serves checks
// before a cutover, never users).
type Listen struct {
	Address  string `yaml:"address,omitempty" json:"address,omitempty" jsonschema:"default=127.0.0.1" jsonschema_description:"IP address the production listener binds: 127.0.0.1 (default), 0.0.0.0 or :: for every interface, or one address of this machine."`
	Port     int    `yaml:"port,omitempty" json:"port,omitempty" jsonschema:"minimum=1,maximum=65535,default=8080" jsonschema_description:"Production listener port."`
	TestPort int    `yaml:"test_port,omitempty" json:"test_port,omitempty" jsonschema:"minimum=1,maximum=65535" jsonschema_description:"Test listener port (blue/green); port+1 by default. Always on 127.0.0.1."`
	// TLS makes the production listener serve HTTPS.
	TLS *ListenTLS `yaml:"tls,omitempty" json:"tls,omitempty" jsonschema_description:"Serve HTTPS on the production listener, with a certificate from files or from an ACME CA such as Let's Encrypt."`
	// HTTPRedirectPort opens a plain HTTP listener on Address that
	// redirects every request to https (308).
	HTTPRedirectPort int `yaml:"http_redirect_port,omitempty" json:"http_redirect_port,omitempty" jsonschema:"minimum=1,maximum=65535" jsonschema_description:"With tls: a plain HTTP port on address (such as 80) answering 308 to https on port."`
}

// ListenTLS is the certificate of a production listener.
type ListenTLS struct {
	CertFile string `yaml:"cert_file,omitempty" json:"cert_file,omitempty" jsonschema_description:"PEM certificate chain (leaf first); relative to cutover.yaml's directory or absolute."`
	KeyFile  string `yaml:"key_file,omitempty" json:"key_file,omitempty" jsonschema_description:"PEM private key of the certificate, unencrypted; relative to cutover.yaml's directory or absolute. Keep it out of the repository."`
	ACME     *ACME  `yaml:"acme,omitempty" json:"acme,omitempty" jsonschema_description:"Obtain and renew the certificate from an ACME CA (Let's Encrypt by default) instead of files."`
	// HTTP2 offers clients HTTP/2 besides HTTP/1.1 (unset: true).
	HTTP2 *bool `yaml:"http2,omitempty" json:"http2,omitempty" jsonschema:"default=true" jsonschema_description:"Offer HTTP/2 to clients (ALPN h2) besides HTTP/1.1; false offers HTTP/1.1 only. Targets are spoken to in HTTP/1.1 either way."`
}

// ACME gets a production listener's certificates from an ACME CA: TLS-ALPN-01
// on the listener (reachable on port 443), or HTTP-01 on http_redirect_port
// (reachable on port 80).
type ACME struct {
	Email       string   `yaml:"email,omitempty" json:"email,omitempty" jsonschema_description:"Contact address the CA sends expiry notices to."`
	Domains     []string `yaml:"domains,omitempty" json:"domains,omitempty" jsonschema_description:"Host names to obtain certificates for; no other name gets one."`
	Directory   string   `yaml:"directory,omitempty" json:"directory,omitempty" jsonschema:"default=https://acme-v02.api.letsencrypt.org/directory" jsonschema_description:"ACME directory URL of the CA."`
	CARoot      string   `yaml:"ca_root,omitempty" json:"ca_root,omitempty" jsonschema_description:"PEM file of the CA certificates of a private CA (such as Pebble): those that sign the directory's HTTPS, and those that sign the issued certificates, which production hooks verify the listener with; relative to cutover.yaml's directory or absolute."`
	RenewBefore Duration `yaml:"renew_before,omitempty" json:"renew_before,omitempty" jsonschema_description:"Renew this long before expiry; default a third of the certificate's lifetime, at most 30 days."`
}

// DefaultListenAddress is the bind address of a listener when none is given.
const DefaultListenAddress = "127.0.0.1"

// ProductionAddr is the IP:PORT the production listener binds.
func (l Listen) ProductionAddr() string {
	return net.JoinHostPort(l.Address, strconv.Itoa(l.Port))
}

// TestAddr is the IP:PORT the test listener binds: always loopback.
func (l Listen) TestAddr() string {
	return net.JoinHostPort(DefaultListenAddress, strconv.Itoa(l.TestPort))
}

// ProductionURL is the URL this machine reaches the production listener on.
func (l Listen) ProductionURL() string {
	scheme := "http://"
	if l.TLS != nil {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(l.LocalProductionHost(), strconv.Itoa(l.Port))
}

// BoundAddr is one address an environment's listeners bind, and the
// listen field that sets its port.
type BoundAddr struct{ Field, Addr string }

// Bound lists the addresses an environment's listeners bind: production,
// test, and the redirect listener when there is one.
func (l Listen) Bound() []BoundAddr {
	out := []BoundAddr{{"port", l.ProductionAddr()}, {"test_port", l.TestAddr()}}
	if a := l.RedirectAddr(); a != "" {
		out = append(out, BoundAddr{"http_redirect_port", a})
	}
	return out
}

// RedirectAddr is the IP:PORT of the HTTP→HTTPS redirect listener, or "" without one.
func (l Listen) RedirectAddr() string {
	if l.HTTPRedirectPort == 0 {
		return ""
	}
	return net.JoinHostPort(l.Address, strconv.Itoa(l.HTTPRedirectPort))
}

// TLSPath resolves a path of listen.tls: relative paths are relative to
// the directory of cutover.yaml.
func (c *Config) TLSPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir(), filepath.FromSlash(p))
}

// TestURL is the URL of the test listener.
func (l Listen) TestURL() string { return "http://" + l.TestAddr() }

// LocalProductionHost is the IP this machine reaches its production
// listener on: 127.0.0.1 when it binds every interface, else the bound
// address.
func (l Listen) LocalProductionHost() string {
	a, err := netip.ParseAddr(l.Address)
	if err != nil || a.IsUnspecified() {
		return DefaultListenAddress
	}
	return a.String()
}

// Approval is a manual gate before deploying to an environment.
type Approval struct {
	Required bool     `yaml:"required,omitempty" json:"required,omitempty"`
	Timeout  Duration `yaml:"timeout,omitempty" json:"timeout,omitempty" jsonschema:"default=168h" jsonschema_description:"An unanswered approval fails the execution after this long (CodePipeline: 7 days)."`
	// Approvers and Role say who may approve or reject: anyone named in
	// Approvers, or anyone holding Role or a stronger one. With neither, any
	// approver (an API token of role approver or admin, or the machine's
	// owner through the CLI) may.
	Approvers []string `yaml:"approvers,omitempty" json:"approvers,omitempty" jsonschema_description:"Who may approve or reject: API token names (or, through the CLI, OS user names)."`
	Role      string   `yaml:"role,omitempty" json:"role,omitempty" jsonschema:"enum=approver,enum=admin" jsonschema_description:"Anyone holding this role or a stronger one may approve or reject (approver or admin)."`
	// ForbidAuthor refuses an approval from whoever caused the execution:
	// the pusher named by the Git host's webhook, or the token or OS user
	// that triggered it.
	ForbidAuthor bool `yaml:"forbid_author,omitempty" json:"forbid_author,omitempty" jsonschema_description:"The author of the change (the pusher, or whoever triggered the execution) may not approve it."`
}

// ApprovalRoles are the roles approval.role may name: weaker roles cannot
// approve at all.
var ApprovalRoles = []string{"approver", "admin"}

// ECS names the AWS resources of an environment on platform ecs. Cutover does
// not create them (see `cutover export cloudformation`); it registers task
// definitions and drives deployments on them.
type ECS struct {
	Region           string                 `yaml:"region,omitempty" json:"region,omitempty" jsonschema_description:"AWS region; the standard chain (AWS_REGION, profile) when empty."`
	Profile          string                 `yaml:"profile,omitempty" json:"profile,omitempty" jsonschema_description:"Shared config profile; the standard credential chain when empty."`
	Endpoint         string                 `yaml:"endpoint,omitempty" json:"endpoint,omitempty" jsonschema_description:"Endpoint override for every AWS service, for testing (moto, LocalStack)."`
	Stack            string                 `yaml:"stack,omitempty" json:"stack,omitempty" jsonschema_description:"Name of the app stack cutover export cloudformation describes (such as bluemed-app-production): cutover deploy reads the cluster, services, subnets, security group, roles, log group, target groups and listener rules from its outputs; settings written here win."`
	Cluster          string                 `yaml:"cluster,omitempty" json:"cluster,omitempty" jsonschema_description:"ECS cluster name or ARN."`
	ExecutionRoleARN string                 `yaml:"execution_role_arn,omitempty" json:"execution_role_arn,omitempty" jsonschema_description:"Task execution role (pulls images, reads secrets, writes logs)."`
	TaskRoleARN      string                 `yaml:"task_role_arn,omitempty" json:"task_role_arn,omitempty" jsonschema_description:"Role the containers run as."`
	LogGroup         string                 `yaml:"log_group,omitempty" json:"log_group,omitempty" jsonschema_description:"CloudWatch Logs group for the awslogs driver; no log configuration when empty."`
	LaunchType       string                 `yaml:"launch_type,omitempty" json:"launch_type,omitempty" jsonschema:"enum=FARGATE,enum=EC2,default=FARGATE"`
	Subnets          []string               `yaml:"subnets,omitempty" json:"subnets,omitempty" jsonschema_description:"Subnets of the tasks (awsvpc): each deployment places the service's new tasks there, with security_groups (the service's own when none are listed), keeping the service's assign-public-IP setting."`
	SecurityGroups   []string               `yaml:"security_groups,omitempty" json:"security_groups,omitempty"`
	BlueGreen        string                 `yaml:"blue_green,omitempty" json:"blue_green,omitempty" jsonschema:"enum=codedeploy,enum=ecs,default=codedeploy" jsonschema_description:"What runs strategy blue_green: codedeploy, or ecs for ECS-native blue/green (no codedeploy needed)."`
	RoleARN          string                 `yaml:"role_arn,omitempty" json:"role_arn,omitempty" jsonschema_description:"blue_green: ecs only: role ECS assumes to move the listener rules between the target groups."`
	CodeDeploy       *CodeDeploy            `yaml:"codedeploy,omitempty" json:"codedeploy,omitempty" jsonschema_description:"CodeDeploy application and deployment group; required by strategy blue_green unless blue_green is ecs."`
	Alarms           []string               `yaml:"alarms,omitempty" json:"alarms,omitempty" jsonschema_description:"CloudWatch alarm names that make ECS roll back a rolling or ECS-native blue/green deployment."`
	LambdaHooks      map[string]string      `yaml:"lambda_hooks,omitempty" json:"lambda_hooks,omitempty" jsonschema_description:"blue_green: lifecycle event (BeforeInstall, AfterInstall, AfterAllowTestTraffic, BeforeAllowTraffic, AfterAllowTraffic) to the Lambda function ARN of its hook. The same names work for CodeDeploy and ECS-native blue/green (mapped to PRE_SCALE_UP, POST_SCALE_UP, POST_TEST_TRAFFIC_SHIFT, PRE_PRODUCTION_TRAFFIC_SHIFT, POST_PRODUCTION_TRAFFIC_SHIFT); with blue_green: ecs the ECS stage names themselves are accepted too. ECS invokes the functions with role_arn. The function answers its engine's protocol: CodeDeploy hooks call PutLifecycleEventHookExecutionStatus, ECS-native hooks return hookStatus."`
	ECR              *ECR                   `yaml:"ecr,omitempty" json:"ecr,omitempty" jsonschema_description:"Where images built for this environment are pushed (when deploy has no --image)."`
	Services         map[string]*ECSService `yaml:"services,omitempty" json:"services,omitempty" jsonschema_description:"The ECS service of each cutover service; every service needs one."`
}

// Engines of strategy blue_green on ecs.
const (
	BlueGreenCodeDeploy = "codedeploy" // CodeDeploy shifts traffic (the default)
	BlueGreenECS        = "ecs"        // ECS-native blue/green: the ECS deployment controller shifts traffic
)

// BlueGreenEngine says what runs blue/green deployments: BlueGreenECS or
// BlueGreenCodeDeploy, the default.
func (x *ECS) BlueGreenEngine() string {
	if x != nil && x.BlueGreen == BlueGreenECS {
		return BlueGreenECS
	}
	return BlueGreenCodeDeploy
}

// ECR is how an ECS environment's images are stored: one repository per
// service (immutable tags, scan on push, lifecycle policy) and a scan gate.
type ECR struct {
	RepositoryPrefix string `yaml:"repository_prefix,omitempty" json:"repository_prefix,omitempty" jsonschema_description:"Prefix of the repository names (PREFIX + project/service)."`
	FailOnSeverity   string `yaml:"fail_on_severity,omitempty" json:"fail_on_severity,omitempty" jsonschema:"enum=INFORMATIONAL,enum=LOW,enum=MEDIUM,enum=HIGH,enum=CRITICAL,default=CRITICAL" jsonschema_description:"A scan finding at or above this severity fails the deploy."`
	LifecycleKeep    int    `yaml:"lifecycle_keep,omitempty" json:"lifecycle_keep,omitempty" jsonschema:"minimum=1,default=30" jsonschema_description:"How many images the lifecycle policy keeps."`
	KMSKey           string `yaml:"kms_key,omitempty" json:"kms_key,omitempty" jsonschema_description:"KMS key for repository encryption; AES256 when empty."`
}

// CodeDeploy selects where blue/green deployments of an ECS environment run.
type CodeDeploy struct {
	Application string `yaml:"application" json:"application" jsonschema:"required"`
	// CodeDeploy has one deployment group per ECS service: this shorthand is
	// only for a file with one service (see ECSService.DeploymentGroup).
	DeploymentGroup string `yaml:"deployment_group,omitempty" json:"deployment_group,omitempty" jsonschema_description:"Deployment group of a file's only service; with several services give each its own services.SERVICE.deployment_group (default ENV-SERVICE, as cutover export cloudformation names them)."`
}

// ECSService is the AWS side of one cutover service.
type ECSService struct {
	Service      string       `yaml:"service,omitempty" json:"service,omitempty" jsonschema_description:"ECS service name; the cutover service name by default."`
	Container    string       `yaml:"container,omitempty" json:"container,omitempty" jsonschema_description:"Container name in the task definition; the cutover service name by default."`
	CPU          string       `yaml:"cpu,omitempty" json:"cpu,omitempty" jsonschema:"pattern=^[0-9]+$" jsonschema_description:"Task CPU units, such as 256."`
	Memory       string       `yaml:"memory,omitempty" json:"memory,omitempty" jsonschema:"pattern=^[0-9]+$" jsonschema_description:"Task memory in MiB, such as 512."`
	TargetGroups TargetGroups `yaml:"target_groups,omitempty" json:"target_groups,omitzero"`
	Listener     string       `yaml:"listener,omitempty" json:"listener,omitempty" jsonschema_description:"Production listener ARN (or give rule)."`
	Rule         string       `yaml:"rule,omitempty" json:"rule,omitempty" jsonschema_description:"Production listener rule ARN."`
	TestListener string       `yaml:"test_listener,omitempty" json:"test_listener,omitempty"`
	TestRule     string       `yaml:"test_rule,omitempty" json:"test_rule,omitempty"`
	TaskRoleARN  string       `yaml:"task_role_arn,omitempty" json:"task_role_arn,omitempty" jsonschema_description:"Role this service's containers run as; ecs.task_role_arn when empty."`
	// DeploymentGroup is the service's CodeDeploy deployment group (blue_green: codedeploy).
	DeploymentGroup string            `yaml:"deployment_group,omitempty" json:"deployment_group,omitempty" jsonschema_description:"CodeDeploy deployment group of this service (blue_green: codedeploy); ENV-SERVICE by default, as cutover export cloudformation names them."`
	Secrets         map[string]string `yaml:"secrets,omitempty" json:"secrets,omitempty" jsonschema_description:"Environment variable -> SSM parameter or Secrets Manager ARN, injected by ECS (valueFrom)."`
	// Bucket and Distribution are a static service's site (services.<name>.static).
	Bucket       string `yaml:"bucket,omitempty" json:"bucket,omitempty" jsonschema:"pattern=^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$" jsonschema_description:"Static services only: the S3 bucket of the site's files (each release under releases/DIGEST/); the app stack's SiteBucketName output with ecs.stack."`
	Distribution string `yaml:"distribution,omitempty" json:"distribution,omitempty" jsonschema:"pattern=^[A-Z0-9]+$" jsonschema_description:"Static services only: the ID of the CloudFront distribution serving the bucket, whose origin path cutover deploy points at the release; the app stack's DistributionId output with ecs.stack."`
}

// TargetGroups are the ARNs of a service's two target groups.
type TargetGroups struct {
	Blue  string `yaml:"blue,omitempty" json:"blue,omitempty"`
	Green string `yaml:"green,omitempty" json:"green,omitempty"`
}

// Launch types of an ECS environment.
const (
	LaunchTypeFargate = "FARGATE"
	LaunchTypeEC2     = "EC2"
)

// Platforms: the accepted values.
var platforms = []string{PlatformLocal, PlatformECS}

// ServiceNames returns the service names, sorted.
func (c *Config) ServiceNames() []string {
	return slices.Sorted(maps.Keys(c.Services))
}

// SecretNames are the names of every service's secrets, sorted, each once.
func (c *Config) SecretNames() []string {
	var names []string
	for _, s := range c.Services {
		names = append(names, s.Secrets...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// SecretServices are the services whose secrets include name, sorted
// (empty, not nil, when none does).
func (c *Config) SecretServices(name string) []string {
	out := []string{}
	for _, s := range c.ServiceNames() {
		if slices.Contains(c.Services[s].Secrets, name) {
			out = append(out, s)
		}
	}
	return out
}

// ECSSecrets is what ECS injects into service's containers in env:
// variable -> valueFrom. Every name of services.NAME.secrets reads the SSM
// parameter /cutover/PROJECT/ENV/NAME unless
// environments.ENV.ecs.services.NAME.secrets names another source; that map
// may add variables of its own.
func (c *Config) ECSSecrets(env, service string) map[string]string {
	out := map[string]string{}
	if s := c.Services[service]; s != nil {
		for _, k := range s.Secrets {
			out[k] = "/cutover/" + c.Project + "/" + env + "/" + k
		}
	}
	if e := c.Environments[env]; e != nil && e.ECS != nil && e.ECS.Services[service] != nil {
		maps.Copy(out, e.ECS.Services[service].Secrets)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// EnvironmentNames returns the environment names, sorted.
func (c *Config) EnvironmentNames() []string {
	return slices.Sorted(maps.Keys(c.Environments))
}

// Dir returns the directory build contexts are relative to: the directory of the file
// given to Load, the directory given to ParseDir, or "" after Parse.
func (c *Config) Dir() string {
	if c.dir == "" && c.File != "" {
		return filepath.Dir(c.File)
	}
	return c.dir
}

// ContextDir returns the absolute-or-relative path of a service's build context, resolved
// against Dir. It is "" for a service without build.
func (c *Config) ContextDir(service string) string {
	s := c.Services[service]
	if s == nil || s.Build == nil {
		return ""
	}
	return filepath.Join(c.dir, filepath.FromSlash(s.Build.Context))
}

// quoteList renders accepted values for a "what to do" hint: "a", "b" or "c".
func quoteList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = `"` + v + `"`
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// Platforms an environment runs on.
const (
	PlatformLocal = "local"
	PlatformECS   = "ecs"
)

package config

import "regexp"

var (
	bucketRe       = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	distributionRe = regexp.MustCompile(`^[A-Z0-9]+$`)
)

// ecsStatic checks a service's entry under environments.<env>.ecs.services
// (at sp) for where the service runs: a static service (services.<name>.static)
// is a bucket and a distribution, never an ECS service; a container service
// has neither.
func (v *validator) ecsStatic(sp, name string, s *ECSService, fromStack bool) {
	if s == nil {
		s = &ECSService{}
	}
	if v.c.Services[name].Static == nil {
		if s.Bucket != "" || s.Distribution != "" {
			v.add(sp, "bucket and distribution are for static services only, and services.%s has no static section (remove them, or add static: { dir: DIR })", name)
		}
		return
	}
	for field, set := range map[string]bool{"service": s.Service != "", "container": s.Container != "", "cpu": s.CPU != "", "memory": s.Memory != "",
		"target_groups": s.TargetGroups != (TargetGroups{}), "listener": s.Listener != "", "rule": s.Rule != "", "test_listener": s.TestListener != "",
		"test_rule": s.TestRule != "", "task_role_arn": s.TaskRoleARN != "", "deployment_group": s.DeploymentGroup != "", "secrets": len(s.Secrets) > 0} {
		if set {
			v.add(sp+"."+field, "is an ECS setting, but services.%s is static: it is published to its bucket and distribution, not run on ECS (remove it)", name)
		}
	}
	switch {
	case s.Bucket == "" && !fromStack:
		v.add(sp+".bucket", "missing (name the S3 bucket of the static site, or set ecs.stack to read it from the app stack)")
	case s.Bucket != "" && !bucketRe.MatchString(s.Bucket):
		v.add(sp+".bucket", "%q is not an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens)", s.Bucket)
	}
	switch {
	case s.Distribution == "" && !fromStack:
		v.add(sp+".distribution", "missing (give the ID of the CloudFront distribution serving the bucket, such as E2QWRUHAPOMQZL, or set ecs.stack)")
	case s.Distribution != "" && !distributionRe.MatchString(s.Distribution):
		v.add(sp+".distribution", "%q is not a CloudFront distribution ID (uppercase letters and digits, such as E2QWRUHAPOMQZL; not its domain name or ARN)", s.Distribution)
	}
}

// ecsAllStatic refuses an ECS environment with nothing to run on ECS: its
// static sites are published along an ECS deployment, as the export
// describes them beside an ECS application.
func (v *validator) ecsAllStatic(p string) {
	for _, s := range v.c.Services {
		if s.Static == nil {
			return
		}
	}
	if len(v.c.Services) > 0 {
		v.add(p, "every service is static, and an ECS environment deploys at least one container service beside its static sites (remove static from one service, or use platform: local)")
	}
}

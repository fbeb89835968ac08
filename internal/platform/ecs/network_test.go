package ecs

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// TestNetworkKeepsTheServicesSecurityGroupsWhenNoneAreListed: ecs.subnets
// without ecs.security_groups is a valid environment (Fargate asks only for
// the subnets). ECS and CodeDeploy give tasks whose awsvpc configuration
// names no security group the VPC's default one, so a deployment that named
// the subnets alone took the service's own security groups away from its
// new tasks. Without security groups listed, the service's (or its primary
// task set's) are kept, as its assign-public-IP setting is.
func TestNetworkKeepsTheServicesSecurityGroupsWhenNoneAreListed(t *testing.T) {
	p := &Platform{o: Options{Subnets: []string{"subnet-new"}}}
	own := &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{
		Subnets: []string{"subnet-old"}, SecurityGroups: []string{"sg-app"}, AssignPublicIp: types.AssignPublicIpEnabled}}
	for name, svc := range map[string]types.Service{
		"service":  {NetworkConfiguration: own},
		"task set": {TaskSets: []types.TaskSet{{Status: aws.String("PRIMARY"), NetworkConfiguration: own}}},
	} {
		nc := p.networkFor(svc)
		if nc == nil || nc.AwsvpcConfiguration == nil {
			t.Fatalf("%s: no network configuration", name)
		}
		c := nc.AwsvpcConfiguration
		if !slices.Equal(c.Subnets, []string{"subnet-new"}) || !slices.Equal(c.SecurityGroups, []string{"sg-app"}) || c.AssignPublicIp != types.AssignPublicIpEnabled {
			t.Errorf("%s: subnets %v, security groups %v, public IP %s; want [subnet-new], the service's [sg-app] (none listed: ECS would give the VPC's default group), ENABLED",
				name, c.Subnets, c.SecurityGroups, c.AssignPublicIp)
		}
	}
	// Listed security groups still replace the service's.
	p.o.SecurityGroups = []string{"sg-listed"}
	if c := p.networkFor(types.Service{NetworkConfiguration: own}).AwsvpcConfiguration; !slices.Equal(c.SecurityGroups, []string{"sg-listed"}) {
		t.Errorf("listed security groups: got %v, want [sg-listed]", c.SecurityGroups)
	}
}

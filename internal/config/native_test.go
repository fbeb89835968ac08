package config

import "testing"

// TestECSNativeBlueGreen: with blue_green: ecs, custom canary steps and
// alarms are accepted and no CodeDeploy settings are needed.
func TestECSNativeBlueGreen(t *testing.T) {
	c, err := Parse("cutover.yaml", []byte(`version: 1
project: shop
services:
  backend: { image: shop/backend:1, port: 3001, route: { path_prefix: /api } }
environments:
  production:
    platform: ecs
    strategy: { type: blue_green, canary: { percent: 20, interval: 1m }, bake: 10m }
    ecs:
      cluster: production
      subnets: [subnet-1]
      blue_green: ecs
      role_arn: arn:aws:iam::1:role/ecs-lb
      alarms: [shop-5xx]
      services:
        backend:
          rule: arn:aws:elasticloadbalancing:eu-west-1:1:listener-rule/app/shop/1/1/1
          target_groups: { blue: arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/blue/1, green: arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/green/1 }
`))
	if err != nil {
		t.Fatal(err)
	}
	x := c.Environments["production"].ECS
	if x.BlueGreenEngine() != BlueGreenECS || x.RoleARN != "arn:aws:iam::1:role/ecs-lb" {
		t.Errorf("ecs settings %+v", x)
	}
	if (&ECS{}).BlueGreenEngine() != BlueGreenCodeDeploy || (*ECS)(nil).BlueGreenEngine() != BlueGreenCodeDeploy {
		t.Error("the default blue/green engine is not codedeploy")
	}
}

package export

import (
	"strconv"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/ec2"
)

const (
	// ownVpc is the condition of an app stack whose Network parameter is
	// "isolated": the environment gets a VPC of its own (seed 002) instead
	// of the shared template's.
	ownVpc           = "OwnVpc"
	networkParameter = "Network"
)

// network adds a VPC over two AZs: public subnets (load balancer) routed to
// an internet gateway, private subnets (tasks, database) with no route out
// but the VPC endpoints, and the endpoints themselves. Every resource gets
// condition cond ("" for none). subnetCIDR gives each subnet's range. It
// returns the Refs of the public and the private subnets.
func (g *gen) network(t *cloudformation.Template, cond, cidr string, subnetCIDR func(kind string, az int) string) (public, private []string) {
	r := t.Resources
	r["Vpc"] = &ec2.VPC{CidrBlock: cloudformation.String(cidr), EnableDnsHostnames: cloudformation.Bool(true), EnableDnsSupport: cloudformation.Bool(true), Tags: g.tags("Name", g.project), AWSCloudFormationCondition: cond}
	r["InternetGateway"] = &ec2.InternetGateway{Tags: g.tags(), AWSCloudFormationCondition: cond}
	r["InternetGatewayAttachment"] = &ec2.VPCGatewayAttachment{VpcId: cloudformation.Ref("Vpc"), InternetGatewayId: cloudformation.RefPtr("InternetGateway"), AWSCloudFormationCondition: cond}
	r["PublicRouteTable"] = &ec2.RouteTable{VpcId: cloudformation.Ref("Vpc"), Tags: g.tags("Name", g.project+"-public"), AWSCloudFormationCondition: cond}
	r["PublicDefaultRoute"] = &ec2.Route{RouteTableId: cloudformation.Ref("PublicRouteTable"), DestinationCidrBlock: cloudformation.String("0.0.0.0/0"), GatewayId: cloudformation.RefPtr("InternetGateway"),
		AWSCloudFormationDependsOn: []string{"InternetGatewayAttachment"}, AWSCloudFormationCondition: cond}
	r["PrivateRouteTable"] = &ec2.RouteTable{VpcId: cloudformation.Ref("Vpc"), Tags: g.tags("Name", g.project+"-private"), AWSCloudFormationCondition: cond}
	for az := range 2 {
		for _, kind := range []string{"Public", "Private"} {
			id := kind + "Subnet" + string(rune('A'+az))
			r[id] = &ec2.Subnet{VpcId: cloudformation.Ref("Vpc"), CidrBlock: cloudformation.String(subnetCIDR(kind, az)),
				AvailabilityZone: cloudformation.SelectPtr(az, cloudformation.GetAZs("")),
				Tags:             g.tags("Name", g.project+"-"+id), AWSCloudFormationCondition: cond}
			r[id+"Routes"] = &ec2.SubnetRouteTableAssociation{SubnetId: cloudformation.Ref(id), RouteTableId: cloudformation.Ref(kind + "RouteTable"), AWSCloudFormationCondition: cond}
			if kind == "Public" {
				public = append(public, cloudformation.Ref(id))
			} else {
				private = append(private, cloudformation.Ref(id))
			}
		}
	}
	vpcRange := cidr
	if cond != "" {
		vpcRange = cloudformation.GetAtt("Vpc", "CidrBlock")
	}
	r["EndpointSecurityGroup"] = &ec2.SecurityGroup{
		GroupDescription: "HTTPS from inside the VPC to the AWS service endpoints",
		VpcId:            cloudformation.RefPtr("Vpc"),
		SecurityGroupIngress: []ec2.SecurityGroup_Ingress{{IpProtocol: "tcp", FromPort: cloudformation.Int(443), ToPort: cloudformation.Int(443),
			CidrIp: cloudformation.String(vpcRange), Description: cloudformation.String("HTTPS from tasks in the VPC")}},
		SecurityGroupEgress: []ec2.SecurityGroup_Egress{{IpProtocol: "tcp", FromPort: cloudformation.Int(443), ToPort: cloudformation.Int(443),
			CidrIp: cloudformation.String(vpcRange), Description: cloudformation.String("responses stay inside the VPC")}},
		Tags: g.tags(), AWSCloudFormationCondition: cond,
	}
	for _, svc := range interfaceEndpoints {
		r["Endpoint"+logicalID(svc)] = &ec2.VPCEndpoint{
			VpcId: cloudformation.Ref("Vpc"), ServiceName: sub("com.amazonaws.${AWS::Region}." + svc),
			VpcEndpointType: cloudformation.String("Interface"), PrivateDnsEnabled: cloudformation.Bool(true),
			SubnetIds: private, SecurityGroupIds: []string{cloudformation.Ref("EndpointSecurityGroup")}, AWSCloudFormationCondition: cond,
		}
	}
	r["EndpointS3"] = &ec2.VPCEndpoint{VpcId: cloudformation.Ref("Vpc"), ServiceName: sub("com.amazonaws.${AWS::Region}.s3"),
		VpcEndpointType: cloudformation.String("Gateway"), RouteTableIds: []string{cloudformation.Ref("PrivateRouteTable")}, AWSCloudFormationCondition: cond}
	return public, private
}

// isolatedNetwork lets an app stack have a VPC of its own: its Network
// parameter is "shared" (the default: the shared template's VPC) or
// "isolated" (a VPC of the environment, range VpcCidr, which defaults to
// 10.<n>.0.0/16 for the n-th environment so that no two overlap, and so
// could be peered). Choose at the first deploy: changing it replaces the
// load balancer and the services.
func (g *gen) isolatedNetwork(t *cloudformation.Template, env string) {
	n := 1
	for i, e := range g.envOrder() {
		if e == env {
			n = i + 1
		}
	}
	t.Parameters[networkParameter] = cloudformation.Parameter{Type: "String", Default: "shared", AllowedValues: []any{"shared", "isolated"},
		Description: cloudformation.String("shared: the tasks run in the shared template's VPC; isolated: this environment gets a VPC of its own (choose at the first deploy: changing it replaces the load balancer and services)")}
	t.Parameters["VpcCidr"] = cloudformation.Parameter{Type: "String", Default: "10." + strconv.Itoa(n) + ".0.0/16",
		AllowedPattern: cloudformation.String(`^10\.([1-9]?[0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])\.0\.0/16$`),
		Description:    cloudformation.String("Network isolated only: the range of the environment's VPC, a /16 in 10.0.0.0/8 that no other environment uses")}
	t.Conditions[ownVpc] = cloudformation.Equals(cloudformation.Ref(networkParameter), "isolated")
	// The shared VPC's layout in 10.X.0.0/16: public /22s, private /20s.
	octet := map[string]any{"X": cloudformation.Select(1, cloudformation.Split(".", cloudformation.Ref("VpcCidr")))}
	g.network(t, ownVpc, cloudformation.Ref("VpcCidr"), func(kind string, az int) string {
		return cloudformation.SubVars(map[string][]string{"Public": {"10.${X}.0.0/22", "10.${X}.4.0/22"}, "Private": {"10.${X}.16.0/20", "10.${X}.32.0/20"}}[kind][az], octet)
	})
}

// ownOrShared is the environment's own resource's value when the stack has
// its own VPC, else the shared stack's export.
func (g *gen) ownOrShared(own, sharedExport string) string {
	return cloudformation.If(ownVpc, own, g.imp(sharedExport))
}

// vpcID is the environment's VPC.
func (g *gen) vpcID() string { return g.ownOrShared(cloudformation.Ref("Vpc"), "VpcId") }

// vpcRange is the environment's VPC's address range.
func (g *gen) vpcRange() string {
	return cloudformation.If(ownVpc, cloudformation.GetAtt("Vpc", "CidrBlock"), vpcCIDR)
}

// subnets are the environment's two public or private subnets.
func (g *gen) subnets(kind string) []string {
	var out []string
	for az := range 2 {
		out = append(out, cloudformation.If(ownVpc, cloudformation.Ref(kind+"Subnet"+string(rune('A'+az))),
			cloudformation.Select(az, cloudformation.Split(",", g.imp(kind+"Subnets")))))
	}
	return out
}

// privateSubnets are the tasks' (and the database's) subnets.
func (g *gen) privateSubnets() []string { return g.subnets("Private") }

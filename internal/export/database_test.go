package export

import (
	"strings"
	"testing"
)

// TestOptionalDatabase: the database exists only with Database=postgres, in
// the private subnets, reachable from the tasks only, never public,
// encrypted, its password generated and kept by RDS in Secrets Manager, and
// protected from deletion in production (and only there).
func TestOptionalDatabase(t *testing.T) {
	tpl := bluemedTemplates(t)
	for _, env := range []string{"staging", "production"} {
		m := tpl["app-"+env]
		res := m["Resources"].(map[string]any)
		for _, id := range []string{"DatabaseInstance", "DatabaseSubnetGroup", "DatabaseSecurityGroup", "TaskToDatabase"} {
			if r, _ := res[id].(map[string]any); r == nil || r["Condition"] != "HasDatabase" {
				t.Errorf("app-%s: %s is not behind the HasDatabase condition: %v", env, id, r)
			}
		}
		if c := jsonOf(m["Conditions"].(map[string]any)["HasDatabase"]); c != `{"Fn::Not":[{"Fn::Equals":[{"Ref":"Database"},"none"]}]}` {
			t.Errorf("app-%s: HasDatabase = %s", env, c)
		}
		if p := m["Parameters"].(map[string]any)["Database"].(map[string]any); p["Default"] != "none" {
			t.Errorf("app-%s: the database is not off by default: %v", env, p)
		}
		db := resourcesOfType(m, "AWS::RDS::DBInstance")["DatabaseInstance"]
		prod := env == "production"
		if db["PubliclyAccessible"] != false || db["StorageEncrypted"] != true || db["ManageMasterUserPassword"] != true || db["MasterUserPassword"] != nil ||
			db["DeletionProtection"] != prod || db["MultiAZ"] != prod || db["KmsKeyId"] == nil || db["MasterUserSecret"] == nil {
			t.Errorf("app-%s: database = %s", env, jsonOf(db))
		}
		if r := res["DatabaseInstance"].(map[string]any); r["DeletionPolicy"] != "Snapshot" || r["UpdateReplacePolicy"] != "Snapshot" {
			t.Errorf("app-%s: a deleted or replaced database leaves no snapshot: %v %v", env, r["DeletionPolicy"], r["UpdateReplacePolicy"])
		}
		if sg := jsonOf(resourcesOfType(m, "AWS::RDS::DBSubnetGroup")["DatabaseSubnetGroup"]["SubnetIds"]); !strings.Contains(sg, `"bluemed-PrivateSubnets"`) || strings.Contains(sg, "Public") {
			t.Errorf("app-%s: database subnets = %s", env, sg)
		}
		sg := resourcesOfType(m, "AWS::EC2::SecurityGroup")["DatabaseSecurityGroup"]
		if in := jsonOf(sg["SecurityGroupIngress"]); in != `[{"Description":"PostgreSQL from the tasks","FromPort":5432,"IpProtocol":"tcp","SourceSecurityGroupId":{"Ref":"TaskSecurityGroup"},"ToPort":5432}]` {
			t.Errorf("app-%s: database ingress = %s", env, in)
		}
		// The tasks may read the generated credentials, only when the database exists.
		role := jsonOf(resourcesOfType(m, "AWS::IAM::Role")["ExecutionRole"])
		if !strings.Contains(role, `{"Fn::If":["HasDatabase",{"Action":["secretsmanager:GetSecretValue"],"Condition":{"StringEquals":{"aws:ResourceTag/aws:rds:primaryDBInstanceArn":{"Fn::Sub":"arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:${DatabaseInstance}"}}},"Effect":"Allow","Resource":{"Fn::Sub":"arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:rds!db-*"}},{"Ref":"AWS::NoValue"}]}`) {
			t.Errorf("app-%s: execution role = %s", env, role)
		}
		for _, o := range []string{"DatabaseEndpoint", "DatabaseInstance"} {
			if out := m["Outputs"].(map[string]any)[strings.ToUpper(env[:1])+env[1:]+o].(map[string]any); out["Condition"] != "HasDatabase" {
				t.Errorf("app-%s: output %s is not conditional: %v", env, o, out)
			}
		}
	}
	for name, m := range tpl {
		if strings.Contains(jsonOf(m), `"MasterUserPassword"`) {
			t.Errorf("%s sets a master password in the template", name)
		}
	}
}

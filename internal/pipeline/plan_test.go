package pipeline

import (
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
)

func TestPlanBranchRules(t *testing.T) {
	p := &config.Pipeline{Stages: []config.Stage{
		{Name: "build", Actions: []config.Action{{Name: "api", Kind: "build", RunOrder: 1}, {Name: "unit", Kind: "test", RunOrder: 1}}},
		{Name: "deploy-staging", Branches: []string{"develop"}, Actions: []config.Action{{Name: "deploy", Kind: "deploy"}, {Name: "verify", Kind: "verify"}}},
		{Name: "deploy-production", Branches: []string{"main"}, Actions: []config.Action{{Name: "approve", Kind: "approval"}, {Name: "deploy", Kind: "deploy"}}},
		{Name: "smoke", Actions: []config.Action{{Name: "deploy-preview", Kind: "deploy"}, {Name: "lint", Kind: "command"}}},
	}}
	status := func(stages []StageState) string {
		s := ""
		for _, st := range stages {
			s += st.Name + "=" + st.Status + "("
			for _, a := range st.Actions {
				s += a.Status[:2]
			}
			s += ") "
		}
		return s
	}
	cases := []struct{ noDeploy, branch, want string }{
		{"", "develop", "build=pending(pepe) deploy-staging=pending(pepe) deploy-production=skipped(sksk) smoke=pending(pepe) "},
		{"", "main", "build=pending(pepe) deploy-staging=skipped(sksk) deploy-production=pending(pepe) smoke=pending(pepe) "},
		{"pull requests do not deploy", "feature/x", "build=pending(pepe) deploy-staging=skipped(sksk) deploy-production=skipped(sksk) smoke=pending(skpe) "},
		{"pull requests do not deploy", "develop", "build=pending(pepe) deploy-staging=skipped(sksk) deploy-production=skipped(sksk) smoke=pending(skpe) "},
	}
	for _, c := range cases {
		if got := status(Plan(p, c.noDeploy, c.branch)); got != c.want {
			t.Errorf("%q %s:\n got %s\nwant %s", c.noDeploy, c.branch, got, c.want)
		}
	}
}

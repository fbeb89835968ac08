package pipeline

import (
	"errors"
	"testing"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
)

func TestMayDecide(t *testing.T) {
	alice := auth.Identity{Name: "alice", Role: auth.RoleApprover}
	admin := auth.Identity{Name: "root", Role: auth.RoleAdmin}
	deployer := auth.Identity{Name: "dave", Role: auth.RoleDeployer}
	named := &config.Approval{Approvers: []string{"Alice"}}
	byRole := &config.Approval{Role: "admin"}
	either := &config.Approval{Approvers: []string{"alice"}, Role: "admin"}
	noAuthor := &config.Approval{ForbidAuthor: true}
	for _, c := range []struct {
		name    string
		p       *config.Approval
		who     auth.Identity
		author  string
		approve bool
		ok      bool
	}{
		{"no rules, approver", nil, alice, "", true, true},
		{"no rules, deployer", nil, deployer, "", true, false},
		{"deployer rejecting", nil, deployer, "", false, false},
		{"named (any case)", named, alice, "", true, true},
		{"not named", named, admin, "", true, false},
		{"role admin, approver", byRole, alice, "", true, false},
		{"role admin, admin", byRole, admin, "", true, true},
		{"named or role: named", either, alice, "", true, true},
		{"named or role: role", either, admin, "", true, true},
		{"author approving", noAuthor, alice, "ALICE", true, false},
		{"author rejecting", noAuthor, alice, "alice", false, true},
		{"someone else approving", noAuthor, admin, "alice", true, true},
		{"author unknown", noAuthor, alice, "", true, true},
		{"named rule also refuses the author", &config.Approval{Approvers: []string{"alice"}, ForbidAuthor: true}, alice, "alice", true, false},
	} {
		err := mayDecide(c.p, "production", c.who, c.author, c.approve)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrNotAllowed)) {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

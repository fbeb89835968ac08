// Package auth is who may do what with cutover: roles, API tokens and the
// identities that act (a token's holder through the API, the machine's
// owner through the CLI, a Git host through a signed webhook), and the
// audit log every mutating action is written to.
//
// Tokens are random (256 bits from crypto/rand) with a recognizable prefix,
// shown once when created, and stored only as their SHA-256: a stolen
// database does not yield a usable token.
package auth

import (
	"fmt"
	"strings"
)

// Role is what an identity may do. Each role may do everything the roles
// below it may.
type Role int

// Roles, weakest first.
const (
	RoleNone     Role = iota // not a role: the zero value
	RoleViewer               // reads executions, logs, approvals
	RoleDeployer             // also triggers, cancels, deploys, rolls back
	RoleApprover             // also approves and rejects
	RoleAdmin                // also manages tokens and reads the audit log
)

var roleNames = map[Role]string{RoleViewer: "viewer", RoleDeployer: "deployer", RoleApprover: "approver", RoleAdmin: "admin"}

// RoleNames lists the roles, weakest first.
func RoleNames() []string { return []string{"viewer", "deployer", "approver", "admin"} }

func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return "none"
}

// ParseRole reads a role name; anything else is an error that lists the roles.
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("%q is not a role (use one of %s)", s, strings.Join(RoleNames(), ", "))
}

// Allows reports whether r may do what need requires.
func (r Role) Allows(need Role) bool { return need != RoleNone && r >= need }

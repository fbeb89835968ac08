package auth

import (
	"os/user"
)

// Channels an identity acts through, as recorded in the audit log.
const (
	ViaAPI     = "api"
	ViaCLI     = "cli"
	ViaWebhook = "webhook"
)

// Identity is who acts: the name recorded (a token's name, an OS user, a
// webhook source), the role it holds, the channel and the client address.
type Identity struct {
	Name   string `json:"name"`
	Role   Role   `json:"-"`
	Via    string `json:"via"`
	Remote string `json:"remote,omitempty"`
}

// LocalUser is whoever runs a cutover command on this machine. The CLI acts
// directly on the local store, which only the machine's owner can open, so it
// holds the admin role; it is named after the OS user.
func LocalUser() Identity {
	return Identity{Name: osUser(), Role: RoleAdmin, Via: ViaCLI, Remote: "local"}
}

func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown-user"
}

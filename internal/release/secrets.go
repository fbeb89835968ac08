package release

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/cutoverdev/cutover/internal/secretstore"
)

// secrets is the project's secret values under the home.
func (m *Manager) secrets() secretstore.Store { return secretstore.Open(m.Home, m.Config.Project) }

// Secret is one secret of an environment, as `cutover secrets list` shows
// it: its name, whether it has a value, and which services get it. Never
// the value.
type Secret struct {
	Name     string   `json:"name"`
	Set      bool     `json:"set"`
	Services []string `json:"services"` // the services cutover.yaml gives it to; none: stored, given to no task
}

// SecretChange is what SetSecret or UnsetSecret did.
type SecretChange struct {
	Environment string   `json:"environment"`
	Name        string   `json:"name"`
	Replaced    bool     `json:"replaced,omitempty"` // set: it had a value before
	Removed     bool     `json:"removed,omitempty"`  // unset: it had a value
	Services    []string `json:"services"`           // the services that get it
	File        string   `json:"file"`
}

// SecretEnvironment checks that env is a local environment of
// cutover.yaml, whose secrets this machine keeps (the CLI asks before it
// reads a value). name, when given, is the secret the refusal of an ecs
// environment names in its hint.
func (m *Manager) SecretEnvironment(env, name string) error {
	if _, err := m.environment(env); err != nil {
		return err
	}
	if isECS(m.Config, env) {
		return UsageError{fmt.Sprintf("environment %s is on platform ecs: ECS reads its secrets from SSM or Secrets Manager, not from this machine "+
			"(put a value with aws ssm put-parameter --type SecureString --name /cutover/%s/%s/%s --value file://FILE, "+
			"or name another source in environments.%s.ecs.services.SERVICE.secrets)", env, m.Config.Project, env, cmp.Or(name, "NAME"), env)}
	}
	return nil
}

// SetSecret gives a secret of a local environment its value. Tasks
// started from now on get it; running tasks keep the value they started
// with until the next deployment replaces them.
func (m *Manager) SetSecret(env, name, value string) (SecretChange, error) {
	if err := m.SecretEnvironment(env, name); err != nil {
		return SecretChange{}, err
	}
	st := m.secrets()
	replaced, err := st.Set(env, name, value)
	if err != nil {
		return SecretChange{}, err
	}
	return SecretChange{Environment: env, Name: name, Replaced: replaced, Services: m.Config.SecretServices(name), File: st.File(env)}, nil
}

// UnsetSecret removes a secret's value from a local environment.
func (m *Manager) UnsetSecret(env, name string) (SecretChange, error) {
	if err := m.SecretEnvironment(env, name); err != nil {
		return SecretChange{}, err
	}
	st := m.secrets()
	removed, err := st.Unset(env, name)
	if err != nil {
		return SecretChange{}, err
	}
	return SecretChange{Environment: env, Name: name, Removed: removed, Services: m.Config.SecretServices(name), File: st.File(env)}, nil
}

// Secrets lists a local environment's secrets: every name cutover.yaml's
// services name, set or not, and every name stored for it, sorted.
func (m *Manager) Secrets(env string) ([]Secret, error) {
	if err := m.SecretEnvironment(env, ""); err != nil {
		return nil, err
	}
	values, err := m.secrets().Values(env)
	if err != nil {
		return nil, err
	}
	names := m.Config.SecretNames()
	for k := range values {
		names = append(names, k)
	}
	slices.Sort(names)
	out := []Secret{}
	for _, n := range slices.Compact(names) {
		_, set := values[n]
		out = append(out, Secret{Name: n, Set: set, Services: m.Config.SecretServices(n)})
	}
	return out, nil
}

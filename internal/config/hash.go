package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// ConfigHash identifies the runtime configuration of a service for immutable revisions:
// the sha256 (hex) of the canonical JSON of its port, health check, environment, route and
// desired count. The build section is left out because the image digest identifies it.
// encoding/json sorts map keys, so equal configurations always hash alike.
func (s *Service) ConfigHash() string {
	data, err := json.Marshal(struct {
		Port         int               `json:"port"`
		Health       HealthCheck       `json:"health"`
		Env          map[string]string `json:"env"`
		Route        Route             `json:"route"`
		DesiredCount int               `json:"desired_count"`
	}{s.Port, s.Health, s.Env, s.Route, s.DesiredCount})
	if err != nil {
		// Only plain strings, ints and Durations are marshalled; this cannot fail.
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

package server

import "os"

// Webhook secrets come from the environment, never from cutover.yaml.
const (
	EnvGitHubSecret  = "CUTOVER_GITHUB_WEBHOOK_SECRET"
	EnvGenericSecret = "CUTOVER_WEBHOOK_SECRET"
)

// SecretsFromEnv sets o's webhook secrets from EnvGitHubSecret and EnvGenericSecret.
func (o *DaemonOptions) SecretsFromEnv() {
	o.GitHubSecret = []byte(os.Getenv(EnvGitHubSecret))
	o.GenericSecret = os.Getenv(EnvGenericSecret)
}

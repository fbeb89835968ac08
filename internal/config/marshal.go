package config

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

const marshalHeader = `# cutover.yaml: how cutover builds, routes and deploys this project.
# Check it with: cutover validate
`

// Marshal writes c as cutover.yaml, with a short header comment. Zero values are left out,
// so a Config from FromCompose gives a short file that relies on the defaults.
func Marshal(c *Config) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(marshalHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("write cutover.yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("write cutover.yaml: %w", err)
	}
	return buf.Bytes(), nil
}

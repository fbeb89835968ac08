package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/invopop/jsonschema"
	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as a Go duration string ("500ms", "5s", "1h").
// A bare number is rejected: "interval: 2" could mean seconds or nanoseconds.
type Duration time.Duration

// durationPattern is the shape accepted in the JSON Schema; ParseDuration is the authority.
const durationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$`

// ParseDuration parses a duration string, explaining what to write when it is not one.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if _, err := strconv.ParseFloat(s, 64); err == nil && s != "0" {
		return 0, fmt.Errorf("%q is not a duration (write %q)", s, s+"s")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (write a number with a unit, such as \"500ms\", \"5s\" or \"1h\")", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative (write a duration of 0 or more)", s)
	}
	return Duration(d), nil
}

// Std returns the value as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String returns the Go duration string, such as "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML decodes a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration such as \"5s\", found a %s", kindName(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML encodes the duration as its string.
// Zero trailing units are dropped, as a person writes it: "168h", not "168h0m0s".
func (d Duration) MarshalYAML() (any, error) {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s, nil
}

// MarshalJSON encodes the duration as its string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON decodes a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("expected a duration string such as \"5s\": %w", err)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// JSONSchema renders Duration as a pattern-checked string.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     durationPattern,
		Description: `A duration with a unit, such as "500ms", "5s", "1m" or "168h".`,
	}
}

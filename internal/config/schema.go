package config

import (
	"encoding/json"

	"github.com/invopop/jsonschema"
)

// SchemaID is the $id of the generated JSON Schema.
const SchemaID = "https://cutover.dev/schema/cutover.yaml.json"

// Schema returns the JSON Schema of cutover.yaml, generated from the Go types so that it
// cannot drift from what Parse accepts. Editors use it for completion and checking; Parse
// remains the authority (it also checks cross-field rules a schema cannot express).
func Schema() ([]byte, error) {
	r := &jsonschema.Reflector{
		// Only fields tagged required are required; the rest have defaults.
		RequiredFromJSONSchemaTags: true,
	}
	s := r.Reflect(&Config{})
	s.ID = SchemaID
	s.Title = "cutover.yaml"
	s.Description = "Configuration of cutover: services, environments and how they are deployed."
	if svc, ok := s.Definitions["Config"]; ok {
		nameRules := &jsonschema.Schema{Pattern: labelRe.String()}
		for _, key := range []string{"services", "environments"} {
			if p, ok := svc.Properties.Get(key); ok {
				p.PropertyNames = nameRules
			}
		}
		// Extension keys (x-...) hold YAML anchors, as in compose files.
		svc.PatternProperties = map[string]*jsonschema.Schema{"^x-": {}}
		if p, ok := svc.Properties.Get("project"); ok {
			p.Pattern = labelRe.String()
		}
	}
	return json.MarshalIndent(s, "", "  ")
}

// JSONSchemaExtend lets a threshold be written as a number too (threshold: 2), which YAML
// reads as an integer.
func (Alarm) JSONSchemaExtend(s *jsonschema.Schema) {
	if p, ok := s.Properties.Get("threshold"); ok {
		p.Type = ""
		p.OneOf = []*jsonschema.Schema{{Type: "string"}, {Type: "number"}}
	}
}

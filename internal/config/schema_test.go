package config

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// TestSchema compares the generated schema with testdata/schema.golden.json and checks
// that the example configuration is valid under it and a misspelt key is not.
func TestSchema(t *testing.T) {
	data, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/schema.golden.json", append(data, '\n'))

	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}

	example, err := os.ReadFile("testdata/bluemed/cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(yamlToJSON(t, example)); err != nil {
		t.Errorf("the example does not satisfy the schema: %v", err)
	}
	bad := strings.Replace(string(example), "health:", "helth:", 1)
	if err := sch.Validate(yamlToJSON(t, []byte(bad))); err == nil {
		t.Error("a misspelt key satisfies the schema")
	}
	bad = strings.Replace(string(example), "type: blue_green", "type: canary", 1)
	if err := sch.Validate(yamlToJSON(t, []byte(bad))); err == nil {
		t.Error("an unknown strategy type satisfies the schema")
	}
}

// yamlToJSON converts YAML to the generic JSON value the validator takes.
func yamlToJSON(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSchemaExtensionsAndNumbers(t *testing.T) {
	data, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatal(err)
	}
	in := `
version: 1
project: shop
x-health: &h { path: /healthz }
services:
  web: { image: x, port: 80, health: *h }
environments:
  production:
    strategy:
      alarms: [{ metric: unhealthy_targets, threshold: 1 }]
`
	if err := sch.Validate(yamlToJSON(t, []byte(in))); err != nil {
		t.Error(err)
	}
	if _, err := Parse("cutover.yaml", []byte(in)); err != nil {
		t.Error(err)
	}
}

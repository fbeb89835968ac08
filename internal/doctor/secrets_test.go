package doctor

import (
	"testing"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/secretstore"
)

// doctor fails a local environment without a value for a secret
// cutover.yaml names, and says how to set it; an ecs environment's
// secrets are not this machine's.
func TestDoctorChecksEachLocalEnvironmentsSecrets(t *testing.T) {
	y := `version: 1
project: shop
services:
  web: { image: "shop/web:1", port: 80, secrets: [DB_PASSWORD, API_KEY] }
environments:
  staging: { listen: { port: 18080 } }
  production:
    platform: ecs
    ecs: { region: eu-west-1, stack: shop-app-production }
`
	cfg, err := config.ParseDir("cutover.yaml", t.TempDir(), []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if _, err := secretstore.Open(home, "shop").Set("staging", "API_KEY", "k-1"); err != nil {
		t.Fatal(err)
	}
	cs := checkSecrets(Options{Home: home, Config: cfg})
	if len(cs) != 1 || cs[0].Name != "secrets staging" || cs[0].Status != Fail || cs[0].Detail != "no value for DB_PASSWORD" ||
		cs[0].Fix != "cutover secrets set staging DB_PASSWORD (it reads the value from standard input)" {
		t.Fatalf("checks: %+v", cs)
	}
	if _, err := secretstore.Open(home, "shop").Set("staging", "DB_PASSWORD", "p-1"); err != nil {
		t.Fatal(err)
	}
	if cs := checkSecrets(Options{Home: home, Config: cfg}); len(cs) != 1 || cs[0].Status != OK || cs[0].Detail != "2 secrets set" {
		t.Fatalf("checks once set: %+v", cs)
	}
}

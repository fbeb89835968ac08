package server

import (
	"context"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/store"
)

// POST /v1/environments/ENV/promote needs a deployer, like stop and
// continue: a viewer is refused and nothing reaches the event log; a
// deployer's promote is recorded under the token's name for the running
// deployment's controller. A rollback to a revision that is not the
// environment's is refused before anything runs, and "to" on another
// request is a mistake.
func TestPromoteAndRollbackToGoThroughRelease(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	ctx := context.Background()
	promote := "/v1/environments/production/promote"
	a.expect(t, req{method: "POST", path: promote, token: a.tokens["viewer"], body: `{}`}, 403)
	body := a.expect(t, req{method: "POST", path: promote, token: a.tokens["deployer"], body: `{}`}, 409)
	if !strings.Contains(body["error"].(string), "no deployment") {
		t.Fatalf("promote with nothing in progress: %v", body)
	}
	rev := store.Revision{ID: "r-1", Project: a.Config.Project, Environment: "production", Source: "test",
		Services: map[string]store.ServiceRevision{"hello": {Image: "sha256:" + strings.Repeat("a", 64), ConfigHash: "c"}}}
	if err := a.Store.CreateRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if err := a.Store.CreateDeployment(ctx, store.Deployment{ID: "d-1", Project: a.Config.Project, Environment: "production", Revision: "r-1", Strategy: "blue_green", Phase: "Shifting"}); err != nil {
		t.Fatal(err)
	}
	a.expect(t, req{method: "POST", path: promote, token: a.tokens["viewer"], body: `{}`}, 403)
	body = a.expect(t, req{method: "POST", path: promote, token: a.tokens["deployer"], body: `{}`}, 202)
	if body["deployment"] != "d-1" || body["requested"] != "promote" {
		t.Fatalf("promote answered %v", body)
	}
	evs, _ := a.Store.ListEvents(ctx, store.EventFilter{Project: a.Config.Project, Environment: "production"})
	if len(evs) != 1 || evs[0].Kind != "request.promote" || !strings.HasPrefix(evs[0].Message, "deployer") {
		t.Fatalf("events after a viewer's and a deployer's promote: %+v", evs)
	}

	a.expect(t, req{method: "POST", path: "/v1/environments/production/stop", token: a.tokens["deployer"], body: `{"to": "r-1"}`}, 400)
	a.expect(t, req{method: "POST", path: "/v1/environments/production/rollback", token: a.tokens["viewer"], body: `{"to": "r-1"}`}, 403)
	body = a.expect(t, req{method: "POST", path: "/v1/environments/production/rollback", token: a.tokens["deployer"], body: `{"to": "r-000000000000"}`}, 400)
	if !strings.Contains(body["error"].(string), "r-000000000000") {
		t.Fatalf("rollback to an unknown revision: %v", body)
	}
	a.expect(t, req{method: "POST", path: "/v1/environments/production/rollback", token: a.tokens["deployer"], body: `{"to": 5}`}, 400)
}

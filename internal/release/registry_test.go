package release

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/registry"
	"github.com/cutoverdev/cutover/internal/testenv"
)

// TestStartRegistryUsesThisHomesRunningRegistry: with `cutover serve`
// serving the home's registry, a `cutover run` of the same home used to fail
// to bind the recorded address, start a second registry on a new port and
// write that port to registry.addr: `cutover doctor` then said "not running;
// its address ... is free" of a registry that served, the run's images were
// referenced at a port nobody served once it ended, and the daemon's next
// start moved to that port. Now the running registry is used as it is, the
// file is left alone, and closing the borrowed one leaves it serving. A
// registry that does not take this home's credential is not used.
func TestStartRegistryUsesThisHomesRunningRegistry(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	cred, err := registry.LoadCredential(home)
	if err != nil {
		t.Fatal(err)
	}
	o := registry.Options{Dir: filepath.Join(home, "registry"), Credential: cred}
	addrFile := filepath.Join(home, "registry.addr")

	served, err := startRegistryAt(ctx, o, addrFile) // the daemon's
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = served.Close(context.Background()) })
	recorded, _ := os.ReadFile(addrFile)

	run, err := startRegistryAt(ctx, o, addrFile) // a foreground run's, meanwhile
	if err != nil {
		t.Fatal(err)
	}
	if run.Addr() != served.Addr() {
		t.Errorf("a second start while the home's registry serves at %s: got %s, want the same address", served.Addr(), run.Addr())
	}
	if now, _ := os.ReadFile(addrFile); string(now) != string(recorded) {
		t.Errorf("registry.addr rewritten from %q to %q while the registry at the first one still serves", strings.TrimSpace(string(recorded)), strings.TrimSpace(string(now)))
	}
	if err := run.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !answers(t, served.Addr(), cred) {
		t.Errorf("the daemon's registry stopped when the run that used it ended")
	}

	// Another home's registry on the recorded address is not this home's.
	other := t.TempDir()
	otherCred, err := registry.LoadCredential(other)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := startRegistryAt(ctx, registry.Options{Dir: filepath.Join(other, "registry"), Credential: otherCred}, addrFile)
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close(ctx)
	if foreign.Addr() == served.Addr() {
		t.Errorf("a registry with another credential used the one at %s", served.Addr())
	}
}

// answers says whether the registry at addr answers its base endpoint to cred.
func answers(t *testing.T, addr, cred string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/", nil)
	req.SetBasicAuth(registry.Username, cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// The recorded registry address taken, since, by another user's process on
// this machine (here a server run as nobody that answers like a registry):
// the run must not hand it this home's push credential to find out whether
// it is this home's registry. It starts a registry of its own instead.
func TestStartRegistryDoesNotSendTheCredentialToAnotherUsersListener(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	cred, err := registry.LoadCredential(home)
	if err != nil {
		t.Fatal(err)
	}
	port, auths := testenv.ServeAsNobody(t)
	addrFile := filepath.Join(home, "registry.addr")
	taken := fmt.Sprintf("127.0.0.1:%d", port)
	if err := os.WriteFile(addrFile, []byte(taken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := startRegistryAt(ctx, registry.Options{Dir: filepath.Join(home, "registry"), Credential: cred}, addrFile)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if r.Addr() == taken {
		t.Errorf("another user's listener at %s was used as this home's registry", taken)
	}
	for _, a := range auths() {
		if a != "" {
			t.Errorf("another user's listener at %s was sent an Authorization header (%d bytes): this home's push credential", taken, len(a))
		}
	}
}

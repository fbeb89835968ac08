package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/auth"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/pipeline"
	"github.com/cutoverdev/cutover/internal/store"
	"github.com/cutoverdev/cutover/internal/testenv"
	"github.com/cutoverdev/cutover/internal/webhook"
)

// A pipeline that only waits at production's approval: it needs no Docker,
// so these tests run the real daemon, store and engine anywhere.
const gateProject = `version: 1
project: %s
services:
  hello: { image: "127.0.0.1:5999/hello:1", port: 8080 }
environments:
  production:
    branch: main
    listen: { port: 18199 }
    approval: %s
pipeline:
  stages:
    - name: gate
      branches: [main]
      actions: [{ name: approve, kind: approval, environment: production, timeout: 1m }]
`

// authServer is a running daemon with one token per role (named after the
// role) plus the tokens named in extra (name → role).
type authServer struct {
	*Server
	base   string
	tokens map[string]string // name → token
}

func newAuthServer(t *testing.T, approval string, extra map[string]string) *authServer {
	t.Helper()
	return newAuthServerWith(t, approval, extra, nil)
}

// newAuthServerWith is newAuthServer with setup applied to the daemon
// before it starts.
func newAuthServerWith(t *testing.T, approval string, extra map[string]string, setup func(*Server)) *authServer {
	t.Helper()
	name := "auth-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	repo, _ := testenv.GitRepo(t, "main", map[string]string{"cutover.yaml": strings.Replace(strings.Replace(gateProject, "%s", name, 1), "%s", approval, 1)})
	ctx := context.Background()
	cfg, st := loadProject(t, repo)
	s := &Server{
		Config: cfg, Store: st, Addr: "127.0.0.1:0", Repo: repo, ConfigPath: "cutover.yaml", Grace: 300 * time.Millisecond,
		Engine: &pipeline.Engine{Store: st, Home: t.TempDir(), Poll: 20 * time.Millisecond},
	}
	s.Webhooks = webhook.Handler(webhook.HandlerConfig{GenericSecret: "s3cret", OnTrigger: func(tr webhook.Trigger) error {
		return s.WebhookTrigger(ctx, tr)
	}})
	a := &authServer{Server: s, tokens: map[string]string{}}
	names := map[string]string{"viewer": "viewer", "deployer": "deployer", "approver": "approver", "admin": "admin"}
	for n, r := range extra {
		names[n] = r
	}
	for n, r := range names {
		tok, err := auth.CreateToken(ctx, st, auth.Identity{Name: "test"}, n, r)
		if err != nil {
			t.Fatal(err)
		}
		a.tokens[n] = tok.Token
	}
	if setup != nil {
		setup(s)
	}
	start(t, s)
	a.base = "http://" + s.Address()
	return a
}

// loadProject loads the repository's cutover.yaml and opens a new store.
func loadProject(t *testing.T, repo string) (*config.Config, *store.Store) {
	t.Helper()
	cfg, err := config.Load(filepath.Join(repo, "cutover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return cfg, st
}

type req struct {
	method, path, token, body string
	contentType               string            // default application/json when there is a body
	header                    map[string]string // Host is set on the request itself
}

// do sends r to the daemon and returns the status and the decoded JSON body.
func (a *authServer) do(t *testing.T, r req) (int, map[string]any) {
	t.Helper()
	hr, err := http.NewRequest(r.method, a.base+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	ct := r.contentType
	if ct == "" && r.method == http.MethodPost {
		ct = "application/json"
	}
	if ct != "-" {
		hr.Header.Set("Content-Type", ct)
	}
	for k, v := range r.header {
		if k == "Host" {
			hr.Host = v
		} else {
			hr.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if json.Unmarshal(raw, &out) != nil {
		out = map[string]any{"raw": string(raw)}
	}
	if resp.StatusCode >= 400 {
		if _, ok := out["error"].(string); !ok {
			t.Fatalf("%s %s answered %d without a JSON error: %s", r.method, r.path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

func (a *authServer) expect(t *testing.T, r req, want int) map[string]any {
	t.Helper()
	code, body := a.do(t, r)
	if code != want {
		t.Fatalf("%s %s (token %q): %d %v, want %d", r.method, r.path, tokenName(a, r.token), code, body, want)
	}
	return body
}

func tokenName(a *authServer, tok string) string {
	for n, v := range a.tokens {
		if v == tok {
			return n
		}
	}
	return tok
}

// trigger queues main through the API as the deployer (or as) and waits
// until the execution waits at the approval.
func (a *authServer) trigger(t *testing.T, as string) store.Execution {
	t.Helper()
	commit := testenv.Git(t, a.Repo, "rev-parse", "HEAD")
	a.expect(t, req{method: "POST", path: "/v1/executions", token: a.tokens[as], body: `{"branch":"main","commit":"` + commit + `"}`}, http.StatusAccepted)
	var x store.Execution
	waitFor(t, "the execution to wait at the approval", func() bool {
		xs, _ := a.Store.ListExecutions(context.Background(), a.Config.Project, 10)
		for _, e := range xs {
			if e.Status == store.ExecutionWaiting {
				if pending, _ := a.Store.PendingApprovals(context.Background(), a.Config.Project); len(pending) == 1 {
					x = e
					return true
				}
			}
		}
		return false
	})
	return x
}

func (a *authServer) approval(t *testing.T, id string) store.Approval {
	t.Helper()
	ap, err := a.Store.GetApproval(context.Background(), id, "approve")
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func TestAPIRefusesAnonymousAndRevokedTokens(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	// Health stays open; everything else needs a token.
	a.expect(t, req{method: "GET", path: "/v1/health"}, http.StatusOK)
	for _, r := range []req{
		{method: "GET", path: "/v1/executions"},
		{method: "GET", path: "/v1/executions/x-1"},
		{method: "POST", path: "/v1/executions", body: `{"branch":"main"}`},
		{method: "POST", path: "/v1/executions/x-1/approve", body: `{"by":"cto"}`},
		{method: "GET", path: "/v1/audit"},
		{method: "GET", path: "/v1/nothing-here"},
		{method: "GET", path: "/v1/executions", token: "not-a-token"},
		{method: "GET", path: "/v1/executions", token: auth.TokenPrefix + strings.Repeat("A", 52)}, // well-formed, unknown
	} {
		a.expect(t, r, http.StatusUnauthorized)
	}
	a.expect(t, req{method: "GET", path: "/v1/executions", token: a.tokens["viewer"]}, http.StatusOK)
	// Basic or a bare token is not a bearer token.
	a.expect(t, req{method: "GET", path: "/v1/executions", header: map[string]string{"Authorization": a.tokens["viewer"]}}, http.StatusUnauthorized)

	if _, err := auth.RevokeToken(context.Background(), a.Store, "viewer"); err != nil {
		t.Fatal(err)
	}
	a.expect(t, req{method: "GET", path: "/v1/executions", token: a.tokens["viewer"]}, http.StatusUnauthorized)
	// Revoked through the API by an admin: the same.
	a.expect(t, req{method: "POST", path: "/v1/tokens/deployer/revoke", token: a.tokens["admin"], body: `{}`}, http.StatusOK)
	a.expect(t, req{method: "GET", path: "/v1/executions", token: a.tokens["deployer"]}, http.StatusUnauthorized)
	a.expect(t, req{method: "POST", path: "/v1/tokens/deployer/revoke", token: a.tokens["admin"], body: `{}`}, http.StatusNotFound)
}

func TestAPIRolesAndTheRecordedApprover(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	// A viewer may read but not trigger.
	a.expect(t, req{method: "POST", path: "/v1/executions", token: a.tokens["viewer"], body: `{"branch":"main"}`}, http.StatusForbidden)
	x := a.trigger(t, "deployer")
	a.expect(t, req{method: "GET", path: "/v1/executions/" + x.ID, token: a.tokens["viewer"]}, http.StatusOK)

	// Neither a viewer nor a deployer may approve or reject; the approval stays pending.
	for _, who := range []string{"viewer", "deployer"} {
		for _, verb := range []string{"approve", "reject"} {
			a.expect(t, req{method: "POST", path: "/v1/executions/" + x.ID + "/" + verb, token: a.tokens[who], body: `{"by":"approver"}`}, http.StatusForbidden)
		}
	}
	if ap := a.approval(t, x.ID); ap.Status != store.ApprovalPending {
		t.Fatalf("after refused decisions the approval is %s", ap.Status)
	}
	// Only an admin reads the audit log and manages tokens.
	for _, who := range []string{"viewer", "deployer", "approver"} {
		a.expect(t, req{method: "GET", path: "/v1/audit", token: a.tokens[who]}, http.StatusForbidden)
		a.expect(t, req{method: "POST", path: "/v1/tokens", token: a.tokens[who], body: `{"name":"mine","role":"admin"}`}, http.StatusForbidden)
	}
	if _, err := a.Store.TokenByHash(context.Background(), "x"); err == nil {
		t.Fatal("lookup of a bogus hash found a token")
	}

	// A forged "by" is ignored: the approver recorded is the token's name.
	a.expect(t, req{method: "POST", path: "/v1/executions/" + x.ID + "/approve", token: a.tokens["approver"], body: `{"by":"cto","comment":"ship it"}`}, http.StatusOK)
	if ap := a.approval(t, x.ID); ap.Status != store.ApprovalApproved || ap.DecidedBy != "approver" || ap.Comment != "ship it" {
		t.Fatalf("approval = %+v, want approved by the token name \"approver\"", ap)
	}
	waitFor(t, "the execution to succeed", func() bool {
		e, _ := a.Store.GetExecution(context.Background(), x.ID)
		return e.Status == "succeeded"
	})
}

func TestAPIBrowserChecks(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	tok := a.tokens["admin"]
	// A cross-site form post (text/plain, foreign Origin) is refused, with or without a token.
	for _, token := range []string{"", tok} {
		a.expect(t, req{method: "POST", path: "/v1/executions", token: token, contentType: "text/plain",
			body: `{"branch":"main"}`, header: map[string]string{"Origin": "https://evil.example"}}, http.StatusForbidden)
	}
	// Not JSON, even same-site with a token: 415; no Content-Type at all: 415.
	a.expect(t, req{method: "POST", path: "/v1/executions", token: tok, contentType: "text/plain", body: `{"branch":"main"}`}, http.StatusUnsupportedMediaType)
	a.expect(t, req{method: "POST", path: "/v1/executions", token: tok, contentType: "application/x-www-form-urlencoded", body: `branch=main`}, http.StatusUnsupportedMediaType)
	a.expect(t, req{method: "POST", path: "/v1/executions/x-1/cancel", token: tok, contentType: "-"}, http.StatusUnsupportedMediaType)
	// A foreign Host (DNS rebinding) is refused before anything else.
	for _, host := range []string{"evil.example", "evil.example:" + port(a), "127.0.0.2:" + port(a), "localhost:1"} {
		a.expect(t, req{method: "GET", path: "/v1/executions", token: tok, header: map[string]string{"Host": host}}, http.StatusMisdirectedRequest)
	}
	// Origin "null" and a foreign origin on a read: refused.
	a.expect(t, req{method: "GET", path: "/v1/executions", token: tok, header: map[string]string{"Origin": "null"}}, http.StatusForbidden)
	a.expect(t, req{method: "GET", path: "/v1/executions", token: tok, header: map[string]string{"Origin": "http://localhost:1"}}, http.StatusForbidden)
	// The daemon's own names pass.
	for _, host := range []string{"127.0.0.1:" + port(a), "localhost:" + port(a)} {
		a.expect(t, req{method: "GET", path: "/v1/executions", token: tok, header: map[string]string{"Host": host, "Origin": "http://" + host}}, http.StatusOK)
	}
	if n, _ := a.Store.ListExecutions(context.Background(), a.Config.Project, 10); len(n) != 0 {
		t.Fatalf("a refused request queued an execution: %+v", n)
	}
}

func port(a *authServer) string {
	_, p, _ := net.SplitHostPort(a.Address())
	return p
}

func TestAPIPublicHost(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	a.PublicHosts = []string{"ci.example.com"}
	tok := a.tokens["viewer"]
	a.expect(t, req{method: "GET", path: "/v1/executions", token: tok, header: map[string]string{"Host": "ci.example.com", "Origin": "https://ci.example.com"}}, http.StatusOK)
	a.expect(t, req{method: "GET", path: "/v1/executions", token: tok, header: map[string]string{"Host": "ci.example.com.evil.example"}}, http.StatusMisdirectedRequest)
}

func TestServeRefusesANonLoopbackAddressWithoutTLS(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := &config.Config{Project: "exposed"}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		s := &Server{Config: cfg, Store: st, Addr: addr}
		err := s.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "--tls-cert") || !strings.Contains(err.Error(), "--behind-proxy") {
			t.Fatalf("serve on %s without TLS: %v, want a refusal naming --tls-cert and --behind-proxy", addr, err)
		}
	}
	// A bare port is no address (it was refused as reachable from other machines).
	for addr, want := range map[string]string{"8791": `--addr "8791" is not HOST:PORT (write 127.0.0.1:8791`, "localhost": `--addr "localhost" is not HOST:PORT (write 127.0.0.1:8790`} {
		s := &Server{Config: cfg, Store: st, Addr: addr}
		if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("serve on %s: %v, want %q", addr, err, want)
		}
	}
	s := &Server{Config: cfg, Store: st, Addr: "0.0.0.0:0", TLSCert: "cert.pem"}
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("a certificate without a key: %v", err)
	}

	// With TLS it serves, over TLS only.
	cert, key := selfSigned(t)
	s = &Server{Config: cfg, Store: st, Addr: "0.0.0.0:0", TLSCert: cert, TLSKey: key, Engine: &pipeline.Engine{Store: st}}
	start(t, s)
	_, p, _ := net.SplitHostPort(s.Address())
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := insecure.Get("https://127.0.0.1:" + p + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health over TLS: %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://127.0.0.1:" + p + "/v1/health"); err == nil && resp.StatusCode == http.StatusOK {
		t.Fatal("the TLS listener answered plain HTTP")
	}

	// Behind a proxy that terminates TLS, it serves plain HTTP.
	s = &Server{Config: cfg, Store: st, Addr: "0.0.0.0:0", BehindProxy: true, Engine: &pipeline.Engine{Store: st}}
	start(t, s)
	_, p, _ = net.SplitHostPort(s.Address())
	resp, err = http.Get("http://127.0.0.1:" + p + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestApprovalRulesOfTheEnvironment(t *testing.T) {
	// alice and dave may approve; bob holds the approver role but is not named;
	// the author of the change may not approve it.
	a := newAuthServer(t, "{ required: true, approvers: [alice, dave], forbid_author: true }",
		map[string]string{"alice": "approver", "bob": "approver", "dave": "approver", "carol": "deployer"})
	x := a.trigger(t, "carol")
	a.expect(t, req{method: "POST", path: "/v1/executions/" + x.ID + "/approve", token: a.tokens["bob"], body: `{}`}, http.StatusForbidden)
	a.expect(t, req{method: "POST", path: "/v1/executions/" + x.ID + "/reject", token: a.tokens["bob"], body: `{}`}, http.StatusForbidden)
	if ap := a.approval(t, x.ID); ap.Status != store.ApprovalPending {
		t.Fatalf("after bob's refused decisions the approval is %s", ap.Status)
	}
	a.expect(t, req{method: "POST", path: "/v1/executions/" + x.ID + "/approve", token: a.tokens["alice"], body: `{}`}, http.StatusOK)
	if ap := a.approval(t, x.ID); ap.DecidedBy != "alice" {
		t.Fatalf("approved by %q, want alice", ap.DecidedBy)
	}
	waitFor(t, "the first execution to succeed", func() bool {
		e, _ := a.Store.GetExecution(context.Background(), x.ID)
		return e.Status == "succeeded"
	})

	// The author: a push whose webhook named alice as the pusher.
	testenv.Git(t, a.Repo, "commit", "-q", "--allow-empty", "-m", "alice's change")
	commit := testenv.Git(t, a.Repo, "rev-parse", "HEAD")
	a.Enqueue(context.Background(), pipeline.Trigger{Kind: pipeline.TriggerPush, Branch: "main", Commit: commit, Author: "alice"}, store.Delivery{})
	var y store.Execution
	waitFor(t, "alice's execution to wait", func() bool {
		xs, _ := a.Store.ListExecutions(context.Background(), a.Config.Project, 10)
		if len(xs) > 0 && xs[0].Commit == commit && xs[0].Status == store.ExecutionWaiting {
			y = xs[0]
			return true
		}
		return false
	})
	waitFor(t, "alice's approval to be requested", func() bool {
		_, err := a.Store.GetApproval(context.Background(), y.ID, "approve")
		return err == nil
	})
	body := a.expect(t, req{method: "POST", path: "/v1/executions/" + y.ID + "/approve", token: a.tokens["alice"], body: `{}`}, http.StatusForbidden)
	if !strings.Contains(body["error"].(string), "forbid_author") {
		t.Fatalf("the refusal does not say why: %v", body)
	}
	// The CLI path uses the same rule: the machine's owner is not named either.
	if _, err := pipeline.Decide(context.Background(), a.Store, a.Config, auth.LocalUser(), y.ID, true, ""); err == nil {
		t.Fatal("an OS user not named in approvers approved through the CLI path")
	}
	a.expect(t, req{method: "POST", path: "/v1/executions/" + y.ID + "/approve", token: a.tokens["dave"], body: `{}`}, http.StatusOK)
}

func TestAuditRecordsEveryAPIActionAndCannotBeChanged(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	x := a.trigger(t, "deployer")
	a.expect(t, req{method: "POST", path: "/v1/executions/" + x.ID + "/approve", token: a.tokens["viewer"], body: `{}`}, http.StatusForbidden)
	a.expect(t, req{method: "POST", path: "/v1/executions/" + x.ID + "/reject", token: a.tokens["approver"], body: `{"comment":"not today"}`}, http.StatusOK)
	a.expect(t, req{method: "POST", path: "/v1/executions/" + x.ID + "/cancel", token: a.tokens["deployer"], body: `{}`}, http.StatusAccepted)
	created := a.expect(t, req{method: "POST", path: "/v1/tokens", token: a.tokens["admin"], body: `{"name":"ci","role":"deployer"}`}, http.StatusCreated)
	if tok, _ := created["token"].(string); !strings.HasPrefix(tok, auth.TokenPrefix) || created["role"] != "deployer" {
		t.Fatalf("token create answered %v", created)
	}
	a.expect(t, req{method: "POST", path: "/v1/tokens", token: a.tokens["admin"], body: `{"name":"ci","role":"viewer"}`}, http.StatusConflict)
	a.expect(t, req{method: "POST", path: "/v1/tokens", token: a.tokens["admin"], body: `{"name":"x","role":"root"}`}, http.StatusBadRequest)
	a.expect(t, req{method: "POST", path: "/v1/tokens/ci/revoke", token: a.tokens["admin"], body: `{}`}, http.StatusOK)

	entries := a.audit(t, "")
	var got []string
	for _, e := range entries {
		if e.Via != auth.ViaAPI || !strings.HasPrefix(e.Remote, "127.0.0.1:") || e.Time.IsZero() {
			t.Fatalf("entry without channel, address or time: %+v", e)
		}
		outcome := e.Outcome
		if i := strings.IndexByte(outcome, ' '); i > 0 {
			outcome = outcome[:i]
		}
		got = append(got, e.Actor+"/"+e.Role+" "+e.Action+" "+strings.Fields(e.Target + " -")[0]+" "+outcome)
	}
	want := []string{
		"deployer/deployer trigger main ok",
		"viewer/viewer approve " + x.ID + " 403",
		"approver/approver reject " + x.ID + " ok",
		"deployer/deployer cancel " + x.ID + " ok",
		"admin/admin token create ci ok",
		"admin/admin token create ci 409",
		"admin/admin token create x 400",
		"admin/admin token revoke ci ok",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range entries {
		if strings.Contains(e.Outcome+e.Target, auth.TokenPrefix) && !strings.Contains(e.Outcome+e.Target, "***") {
			t.Fatalf("an audit entry holds a token: %+v", e)
		}
	}
	// No route changes or removes an entry, whatever the method or role.
	for _, m := range []string{"PUT", "PATCH", "DELETE", "POST"} {
		for _, p := range []string{"/v1/audit", "/v1/audit/1"} {
			code, _ := a.do(t, req{method: m, path: p, token: a.tokens["admin"], contentType: "application/json", body: `{}`})
			if code != http.StatusMethodNotAllowed && code != http.StatusNotFound {
				t.Fatalf("%s %s answered %d", m, p, code)
			}
		}
	}
	after, err := a.Store.ListAudit(context.Background(), time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		if after[i] != entries[i] {
			t.Fatalf("entry %d changed: %+v → %+v", i, entries[i], after[i])
		}
	}
}

// Webhooks need no bearer token (their secret authenticates them), and an
// authentic delivery is audited; a forged one is not run and not audited.
func TestWebhooksUseTheirSignatureAndAreAudited(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	commit := testenv.Git(t, a.Repo, "rev-parse", "HEAD")
	if code := post(t, a.base+"/webhooks/generic", "forged", `{"branch":"main","commit":"`+commit+`"}`); code != http.StatusUnauthorized {
		t.Fatalf("forged webhook: %d", code)
	}
	if code := post(t, a.base+"/webhooks/generic", "s3cret", `{"branch":"main","commit":"`+commit+`"}`); code != http.StatusOK {
		t.Fatalf("signed webhook without a bearer token: %d", code)
	}
	entries, err := a.Store.ListAudit(context.Background(), time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("audit after a forged and an authentic delivery: %+v", entries)
	}
	if e := entries[0]; e.Actor != "webhook generic" || e.Via != auth.ViaWebhook || e.Action != auth.ActionTrigger ||
		e.Target != "push main "+commit || e.Outcome != auth.OutcomeOK || !strings.HasPrefix(e.Remote, "127.0.0.1:") {
		t.Fatalf("webhook audit entry: %+v", e)
	}
}

// A deployer asks the running deployment to stop (as `cutover stop` does);
// a viewer may not; the request reaches the controller's event log under
// the token's name and is audited.
func TestEnvironmentRequestsNeedADeployer(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	ctx := context.Background()
	path := "/v1/environments/production/stop"
	a.expect(t, req{method: "POST", path: path, token: a.tokens["viewer"], body: `{}`}, http.StatusForbidden)
	body := a.expect(t, req{method: "POST", path: path, token: a.tokens["deployer"], body: `{}`}, http.StatusConflict)
	if !strings.Contains(body["error"].(string), "no deployment") {
		t.Fatalf("stop with nothing in progress: %v", body)
	}
	a.expect(t, req{method: "POST", path: "/v1/environments/nowhere/rollback", token: a.tokens["deployer"], body: `{}`}, http.StatusNotFound)

	rev := store.Revision{ID: "r-1", Project: a.Config.Project, Environment: "production", Source: "test",
		Services: map[string]store.ServiceRevision{"hello": {Image: "sha256:" + strings.Repeat("a", 64), ConfigHash: "c"}}}
	if err := a.Store.CreateRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	d := store.Deployment{ID: "d-1", Project: a.Config.Project, Environment: "production", Revision: "r-1", Strategy: "blue_green", Phase: "shifting", Reason: "test"}
	if err := a.Store.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	body = a.expect(t, req{method: "POST", path: path, token: a.tokens["deployer"], body: `{}`}, http.StatusAccepted)
	if body["deployment"] != "d-1" {
		t.Fatalf("stop answered %v", body)
	}
	evs, _ := a.Store.ListEvents(ctx, store.EventFilter{Project: a.Config.Project, Environment: "production"})
	if len(evs) != 1 || evs[0].Kind != "request.stop" || !strings.HasPrefix(evs[0].Message, "deployer") {
		t.Fatalf("events after the stop: %+v", evs)
	}
	entries, _ := a.Store.ListAudit(ctx, time.Time{}, 0)
	var got []string
	for _, e := range entries {
		got = append(got, e.Actor+" "+e.Action+" "+e.Target+" "+strings.Fields(e.Outcome)[0])
	}
	want := "viewer stop production 403|deployer stop production 409|deployer rollback nowhere 404|deployer stop production ok"
	if strings.Join(got, "|") != want {
		t.Fatalf("audit: %s\nwant:  %s", strings.Join(got, "|"), want)
	}
}

// TestAuditSinceAfterYear9999IsAfterEveryEntry (a helper's review): SincePattern takes
// 9999-12-31T23:59:59-00:01, a time in year 10000 (UTC); the store compared
// its text "10000-01-01T..." with the entries' "2026-..." and answered every
// entry as later than it (formatTime now writes it as 9999-12-31).
func TestAuditSinceAfterYear9999IsAfterEveryEntry(t *testing.T) {
	a := newAuthServer(t, "{ required: true }", nil)
	a.trigger(t, "deployer")
	for _, since := range []string{"9999-12-31T23:59:59-00:01", "9999-12-31T23:59:59Z"} {
		if entries := a.audit(t, since); len(entries) != 0 {
			t.Errorf("since=%s (after every entry): answered %d entries, the first at %v", since, len(entries), entries[0].Time)
		}
	}
}

// audit is GET /v1/audit (with since, if any) as the admin.
func (a *authServer) audit(t *testing.T, since string) []store.AuditEntry {
	t.Helper()
	hr, _ := http.NewRequest("GET", a.base+"/v1/audit?since="+url.QueryEscape(since), nil)
	hr.Header.Set("Authorization", "Bearer "+a.tokens["admin"])
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var entries []store.AuditEntry
	if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/audit?since=%s: %d %v", since, resp.StatusCode, err)
	}
	return entries
}

package notify

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// A target that refuses the post and quotes what it was sent to: a PHP
// framework's JSON 404 (slashes escaped: "hooks\/T0\/B0\/..."), a body that
// names the token alone or decoded from %2F. The answer's start goes to the
// log, the URL's secret parts must not.
func TestSecretNotifyURLNotLoggedWhenTheAnswerQuotesIt(t *testing.T) {
	for name, answer := range map[string]func(r *http.Request) string{
		"json-escaped path": func(r *http.Request) string {
			return `{"message":"The route ` + strings.ReplaceAll(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/", `\/`) + ` could not be found."}`
		},
		"token alone": func(r *http.Request) string {
			return "unknown webhook " + r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		},
		"decoded path": func(r *http.Request) string { return "no such hook: " + r.URL.Path },
		"query value":  func(r *http.Request) string { return "bad signature " + r.URL.Query().Get("sig") },
	} {
		t.Run(name, func(t *testing.T) {
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, answer(r))
			}))
			l := &testenv.Buffer{}
			n := newNotifier(t, []Target{{Name: "team", Kind: KindSlack, URL: srv + "/services/T0001/B0001%2Fx/XyZsecretTOKEN?sig=s1gn4ture"}}, l)
			n.Notify(context.Background(), sample)
			closeN(t, n)
			if !strings.Contains(l.String(), "HTTP 404") {
				t.Fatalf("log lacks the refusal:\n%s", l)
			}
			for _, secret := range []string{"XyZsecretTOKEN", "s1gn4ture", "B0001"} {
				if strings.Contains(l.String(), secret) {
					t.Errorf("log contains %q:\n%s", secret, l)
				}
			}
		})
	}
}

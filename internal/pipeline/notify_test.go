package pipeline

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

func TestNotificationsReachTheWebhookAndItsURLStaysSecret(t *testing.T) {
	e, _, out := newEngine(t)
	var mu sync.Mutex
	var kinds []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		kinds = append(kinds, ev["event"].(string))
		mu.Unlock()
	}))
	defer srv.Close()
	hook := srv.URL + "/hooks/T000/secret-path"
	getenv := e.Getenv
	e.Getenv = func(k string) string {
		if k == "HOOK_URL" {
			return hook
		}
		return getenv(k)
	}
	project := "nt-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	removeImages(t, project)
	repo, _ := gitRepo(t, project)
	cfg, _ := os.ReadFile(filepath.Join(repo, "cutover.yaml"))
	y := strings.Replace(string(cfg), "  secrets: { names: [API_TOKEN] }", "  secrets: { names: [API_TOKEN, HOOK_URL] }\n  notifications:\n    - { name: ops, kind: webhook, url_secret: HOOK_URL }", 1)
	_ = os.WriteFile(filepath.Join(repo, "cutover.yaml"), []byte(y), 0o644)
	testenv.Git(t, repo, "commit", "-qam", "notify")
	x, err := e.Run(context.Background(), Trigger{Kind: TriggerPush, Project: project, Repo: repo, Branch: "develop", Commit: testenv.Git(t, repo, "rev-parse", "HEAD")})
	if err != nil || x.Status != "succeeded" {
		t.Fatalf("%v %s %s\n%s", err, x.Status, x.Error, out)
	}
	mu.Lock()
	got := strings.Join(kinds, ",")
	mu.Unlock()
	if got != "execution.started,execution.succeeded" {
		t.Fatalf("notifications %q", got)
	}
	if strings.Contains(out.String(), "secret-path") {
		t.Fatal("the webhook URL reached the log")
	}
}

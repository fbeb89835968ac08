package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cutoverdev/cutover/internal/testenv"
)

const chromium = "/usr/bin/chromium"

// screenshots is where the browser test saves a screenshot of each page:
// $CUTOVER_TEST_ARTIFACTS/dashboard, else a fixed directory under the
// system's temp dir, so that a person can look at them after the run.
func screenshots(t *testing.T) string {
	dir := filepath.Join(os.TempDir(), "cutover-dashboard-screenshots")
	if a := os.Getenv("CUTOVER_TEST_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "dashboard")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// page drives one Chromium tab.
type page struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	base string
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("browser: %s: %v (location %s)", what, err, p.location())
	}
}

func (p *page) location() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	l, _ := chromedp.Run(ctx, chromedp.Location())
	return l
}

func (p *page) open(path, waitFor string) {
	p.t.Helper()
	p.do("open "+path, chromedp.Navigate(p.base+path), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

func (p *page) eval(js string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("browser: evaluate %s: %v", js, err)
	}
	return v
}

func (p *page) count(sel string) int {
	n, _ := strconv.Atoi(p.eval(fmt.Sprintf(`String(document.querySelectorAll(%q).length)`, sel)))
	return n
}

func (p *page) text(sel string) string {
	return p.eval(fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
}

// traffic is the traffic split the page shows for env: color → percent.
func (p *page) traffic(env string) map[string]int {
	raw := p.eval(fmt.Sprintf(`(document.querySelector('.traffic[data-env=%q]') || {dataset: {}}).dataset.traffic || ""`, env))
	out := map[string]int{}
	for _, kv := range strings.Split(raw, ",") {
		if c, v, ok := strings.Cut(kv, "="); ok {
			out[c], _ = strconv.Atoi(v)
		}
	}
	return out
}

// until polls cond every 250ms for at most limit.
func (p *page) until(what string, limit time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			p.shot("timeout")
			p.t.Fatalf("browser: %s not seen within %s (location %s)", what, limit, p.location())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// shot saves a screenshot of the whole page as NAME.png.
func (p *page) shot(name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(p.dir, name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
	return path
}

func only100(tr map[string]int) string {
	for c, v := range tr {
		if v == 100 {
			return c
		}
	}
	return ""
}

func split(tr map[string]int) bool {
	n := 0
	for _, v := range tr {
		if v > 0 && v < 100 {
			n++
		}
	}
	return n == 2
}

// The dashboard as a team uses it, in Debian's Chromium against a real
// `cutover serve` on examples/bluemed as a user's repository: the owner
// logs in with a one-time link from `cutover dashboard`; develop ships a
// commit to staging; main waits for an approval, given on the approval
// page; production then serves the same revision; a redeploy from the
// environment page moves production's traffic bar step by step to the
// other color, and a rollback during the termination wait flips it back.
func TestDashboardInABrowser(t *testing.T) {
	testenv.RequireFile(t, chromium, "chromium")
	p := newPipeRepo(t, "develop")
	// A termination wait long enough to press Rollback in it.
	p.edit("termination_wait: 2s", "termination_wait: 45s")
	testenv.Git(t, p.clone, "commit", "-qam", "a longer termination wait")
	out, errOut, err := p.run("token", "create", "ci", "--role", "deployer", "-o", "json")
	var tok struct{ Token string }
	if err != nil || json.Unmarshal([]byte(out), &tok) != nil {
		t.Fatalf("token create: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = p.run("token", "create", "watcher", "--role", "viewer", "-o", "json")
	var viewer struct{ Token string }
	if err != nil || json.Unmarshal([]byte(out), &viewer) != nil {
		t.Fatalf("token create: %v\n%s%s", err, out, errOut)
	}
	d := startServe(t, p.bin, p.file, p.home, testenv.FreePort(t))
	addr := strings.TrimPrefix(d.base, "http://")

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1360, 900))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	// The first run starts the browser, which lives as long as the context
	// of that run: it gets no timeout.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	b := &page{t: t, ctx: bctx, dir: screenshots(t), base: d.base}

	// Anonymous: the login form.
	b.open("/", "#token")
	b.shot("login")

	// A one-time link logs the machine's owner in; used again, it is refused.
	out, errOut, err = p.run("dashboard", "--addr", addr, "--no-open", "-o", "json")
	var link struct {
		URL       string
		Answering bool `json:"daemon_answering"`
	}
	if err != nil || json.Unmarshal([]byte(out), &link) != nil || !link.Answering {
		t.Fatalf("cutover dashboard: %v\n%s%s", err, out, errOut)
	}
	b.do("open the login link", chromedp.Navigate(link.URL), chromedp.WaitVisible(chromedp.CSS("#link-login")),
		chromedp.Click(chromedp.CSS("#link-login")), chromedp.WaitVisible(chromedp.CSS("#who")))
	if role := b.text("#role"); role != "admin" {
		t.Fatalf("logged in with the role %q, want admin", role)
	}
	u, _ := url.Parse(link.URL)
	req, _ := http.NewRequest(http.MethodPost, u.Scheme+"://"+u.Host+"/login", strings.NewReader(url.Values{"link": {u.Query().Get("link")}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", u.Scheme+"://"+u.Host)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the login link used a second time: %d, want 403", resp.StatusCode)
	}

	trigger := func(branch string) string {
		code, body := d.api(http.MethodPost, "/v1/executions", tok.Token, `{"branch":"`+branch+`"}`)
		var q struct{ Execution string }
		if code != http.StatusAccepted || json.Unmarshal([]byte(body), &q) != nil {
			t.Fatalf("trigger %s: %d %s", branch, code, body)
		}
		return q.Execution
	}
	finished := func(x pipeExecution) bool {
		return x.Status != "queued" && x.Status != "running" && x.Status != "waiting"
	}

	// develop → staging; its page shows the stages and the live log.
	dev := trigger("develop")
	b.open("/executions/"+dev, "#graph")
	b.until("log lines of "+dev, 3*time.Minute, func() bool { return b.count("#log .line") > 2 })
	b.shot("execution-running")
	if x := d.waitExecution(dev, tok.Token, "the end of develop's execution", 6*time.Minute, finished); x.Status != "succeeded" {
		t.Fatalf("develop: %+v", x)
	}
	b.until("the end of the log stream", time.Minute, func() bool { return b.eval(`document.querySelector("#log").dataset.ended || ""`) == "succeeded" })
	b.until("the graph showing staging succeeded", 30*time.Second, func() bool { return b.count(`#graph [data-stage=staging][data-status=succeeded]`) == 1 })
	b.shot("execution")
	b.open("/executions", "#executions")
	b.shot("executions")

	// Some requests to staging (127.0.0.1 only, 60 of them over 15s), for
	// the approval page's charts, then three smuggling attempts, which the
	// proxy refuses itself (the staging card counts them; sent last, when
	// the dashboard's sampler has had the listener's first sample, which
	// is only its baseline).
	load := make(chan struct{})
	go func() {
		defer close(load)
		for range 60 {
			if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/health", p.stgPort)); err == nil {
				resp.Body.Close()
			}
			time.Sleep(250 * time.Millisecond)
		}
		for range 3 {
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.stgPort), 5*time.Second); err == nil {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, "POST /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
				io.Copy(io.Discard, c)
				c.Close()
			}
		}
	}()

	// main → waits at the approval: the overview lists it; its page lays
	// out the evidence; the owner approves with a comment.
	testenv.Git(t, p.clone, "branch", "-f", "main", "HEAD")
	mainX := trigger("main")
	d.waitExecution(mainX, tok.Token, "the approval", 6*time.Minute, func(x pipeExecution) bool { return x.Status == "waiting" || finished(x) })
	b.open("/", "#pending")
	b.shot("overview-pending")
	<-load
	b.until("the staging card counting the smuggling attempts", 30*time.Second, func() bool {
		return strings.HasPrefix(b.text(`[data-env=staging] .refused [data-code="400"]`), "3 malformed")
	})
	b.shot("overview-refused")
	b.do("follow the pending approval", chromedp.Click(chromedp.CSS(`#pending a[href="/executions/`+mainX+`/approval"]`)), chromedp.WaitVisible(chromedp.CSS("#approve")))
	for _, want := range []string{"Changed files", "Images, by digest", "p95 latency", "error rate", "staging now"} {
		if !strings.Contains(b.text("main"), want) {
			t.Fatalf("the approval page lacks %q", want)
		}
	}
	if n := b.count("svg.spark polyline"); n != 2 {
		t.Fatalf("the approval page draws %d charts of staging, want 2 (p95, error rate)", n)
	}
	b.shot("approval")
	b.do("approve", chromedp.SendKeys(chromedp.CSS("#comment"), "staging looks good"), chromedp.Click(chromedp.CSS("#approve")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if f := b.text("#flash"); !strings.Contains(f, "approved") {
		t.Fatalf("after approving: %q", f)
	}
	if x := d.waitExecution(mainX, tok.Token, "the end of main's execution", 6*time.Minute, finished); x.Status != "succeeded" || x.stage("production") != "succeeded" {
		t.Fatalf("main: %+v", x)
	}

	// Both environments serve the revision staging verified, production
	// with all its traffic on one color.
	b.open("/", ".traffic[data-env=production]")
	var first string
	b.until("production serving with all traffic on one color", time.Minute, func() bool {
		first = only100(b.traffic("production"))
		return first != "" && b.eval(`document.querySelector('[data-env=production] .revision').dataset.revision`) != ""
	})
	stagingRev := b.eval(`document.querySelector('[data-env=staging] .revision').dataset.revision`)
	prodRev := b.eval(`document.querySelector('[data-env=production] .revision').dataset.revision`)
	if stagingRev == "" || prodRev == "" {
		t.Fatalf("revisions shown: staging %q, production %q", stagingRev, prodRev)
	}
	b.shot("overview")

	// Redeploy production's revision from its page: on the overview, the
	// bar moves through a split to the other color.
	b.open("/environments/production", "#revisions")
	b.do("redeploy", chromedp.Click(chromedp.CSS(`#revisions button`)), chromedp.WaitVisible(chromedp.CSS("#flash")))
	b.open("/", ".traffic[data-env=production]")
	seen := []string{fmt.Sprint(b.traffic("production"))}
	var deploying string
	b.until("the traffic bar moving to the other color", 3*time.Minute, func() bool {
		tr := b.traffic("production")
		if s := fmt.Sprint(tr); s != seen[len(seen)-1] {
			seen = append(seen, s)
		}
		if split(tr) && deploying == "" {
			deploying = b.shot("overview-deploying")
		}
		return deploying != "" && only100(tr) != "" && only100(tr) != first
	})
	t.Logf("traffic bar: %s", strings.Join(seen, " → "))
	b.open("/environments/production", "#revisions")
	b.shot("environment-shifted")

	// Roll back during the termination wait: the bar flips back at once.
	b.until("the termination wait", time.Minute, func() bool { return strings.Contains(b.text(".progress"), "termination wait") })
	// The page counts the wait down under the pointer without replacing the
	// button: a click that straddles an update is not lost.
	b.eval(`(function () { document.querySelector("#rollback").kept = true; window.markedAt = Date.now(); return ""; })()`)
	b.until("a live update during the termination wait", 15*time.Second, func() bool {
		return b.eval(`String(Number(document.querySelector("[data-live]").dataset.updated) > window.markedAt)`) == "true"
	})
	if b.eval(`String(document.querySelector("#rollback").kept === true)`) != "true" {
		t.Error("a live update replaced the Rollback button (a click in flight would be lost)")
	}
	start := time.Now()
	b.do("roll back", chromedp.Click(chromedp.CSS("#rollback")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	b.until("the bar flipping back to "+first, 30*time.Second, func() bool { return only100(b.traffic("production")) == first })
	t.Logf("rollback flipped the bar back in %s", time.Since(start).Round(100*time.Millisecond))
	b.until("the rolled-back deployment in the history", time.Minute, func() bool { return strings.Contains(b.text("#deployments"), "rolled back") })
	b.shot("environment")

	// The audit log names the owner for the approval and the rollback.
	b.open("/audit", "#audit")
	audit := b.text("#audit")
	for _, want := range []string{"approve", "rollback", "deploy", "login", "dashboard link"} {
		if !strings.Contains(audit, want) {
			t.Fatalf("the audit page lacks %q:\n%s", want, audit)
		}
	}
	b.shot("audit")

	// Log out; a viewer's token logs in through the form and sees the
	// environment without any button.
	b.do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.do("log in as a viewer", chromedp.SendKeys(chromedp.CSS("#token"), viewer.Token), chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#who")))
	b.open("/environments/production", "#revisions")
	if who, n := b.text("#who"), b.count("#actions button, #revisions button, a[href='/audit']"); who != "watcher" || n != 0 {
		t.Fatalf("the viewer %q sees %d buttons or the audit link", who, n)
	}
	b.shot("environment-viewer")

	// The README's screenshot of the overview.
	if os.Getenv("CUTOVER_UPDATE_DOCS") == "1" {
		raw, _ := os.ReadFile(deploying)
		if err := os.WriteFile(filepath.Join(testenv.ModuleRoot(t), "docs", "dashboard-overview.png"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

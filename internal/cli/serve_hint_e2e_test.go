package cli_test

import (
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/testenv"
)

// TestServeNamesTheDashboardCommandThatReachesIt: `cutover serve --addr A
// --home H` says how to log in, and the command it names makes a link that
// this daemon accepts. It used to say `cutover dashboard` whatever --addr
// and --home were: that command looked for a daemon at 127.0.0.1:8790, said
// "no daemon answers ... start it with `cutover serve`" while this one ran,
// and stored its link in another home, where this daemon never finds it.
func TestServeNamesTheDashboardCommandThatReachesIt(t *testing.T) {
	testenv.RequireDocker(t) // serve connects to Docker for the local environment
	bin := testenv.CutoverBinary(t)
	home := t.TempDir()
	file, _ := commandRepo(t, "hint", "")
	d := startServe(t, bin, file, home, testenv.FreePort(t))
	addr := strings.TrimPrefix(d.base, "http://")

	var hint string
	re := regexp.MustCompile("log in with `([^`]*)`")
	for deadline := time.Now().Add(10 * time.Second); hint == ""; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(home, "serve.log"))
		if m := re.FindSubmatch(b); m != nil {
			hint = string(m[1])
		} else if time.Now().After(deadline) {
			t.Fatalf("cutover serve never said how to log in:\n%s", b)
		}
	}
	if !strings.Contains(hint, "--addr "+addr) || !strings.Contains(hint, "--home "+home) {
		t.Errorf("serve --addr %s --home %s says to log in with `%s`: want its --addr and --home", addr, home, hint)
	}
	args := strings.Fields(strings.TrimPrefix(hint, "cutover "))
	cmd := exec.Command(bin, append(args, "--no-open")...)
	// Whoever runs the hint has their own default home: one the daemon does not read.
	cmd.Env = append(os.Environ(), "CUTOVER_HOME="+t.TempDir())
	cmd.Dir = filepath.Dir(file)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.Contains(stderr.String(), "no daemon answers") {
		t.Fatalf("`%s`: %v\n%s%s", hint, err, out, stderr.String())
	}
	link := regexp.MustCompile(`https?://\S+/login\?link=\S+`).FindString(string(out))
	u, err := url.Parse(link)
	if err != nil || u.Host != addr {
		t.Fatalf("`%s` printed the link %q: want one to %s", hint, link, addr)
	}
	req, _ := http.NewRequest(http.MethodPost, d.base+"/login", strings.NewReader(url.Values{"link": {u.Query().Get("link")}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", d.base)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session bool
	for _, c := range resp.Cookies() {
		session = session || (c.Name == "cutover_session" && c.Value != "")
	}
	if !session {
		t.Errorf("logging in with the link of `%s`: status %d and no session cookie: the daemon does not know the link", hint, resp.StatusCode)
	}
}

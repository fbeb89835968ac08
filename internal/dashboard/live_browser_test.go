package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cutoverdev/cutover/internal/testenv"
)

const chromium = "/usr/bin/chromium"

// morphPage loads the dashboard's own live.js (as the dashboard serves it)
// in Debian's Chromium, on a page with no live part, and returns a func that
// evaluates a script there.
func morphPage(t *testing.T) func(js string) string {
	t.Helper()
	testenv.RequireFile(t, chromium, "chromium")
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.FileServerFS(staticFS))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><title>morph</title><div id="live"></div><div id="want"></div><script src="/static/live.js"></script>`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU)...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	ctx, cancel := context.WithTimeout(bctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitReady(chromedp.CSS("#live"))); err != nil {
		t.Fatalf("opening the page: %v", err)
	}
	return func(js string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate: %v\n%s", err, js)
		}
		return v
	}
}

// A live update changes only the nodes that differ: a button that is still
// there stays the same node (a click that straddles an update is not lost),
// a keyed row keeps its own button when rows come in above it, and the
// result is always exactly the HTML the server sent.
func TestLiveUpdateKeepsNodesThatStay(t *testing.T) {
	eval := morphPage(t)
	// set renders html into #live with morph and returns "ok" or what is
	// wrong: the result must read as the same HTML parsed afresh.
	const set = `
function set(html) {
  var next = document.createElement("div");
  next.innerHTML = html;
  window.cutoverMorph(document.getElementById("live"), next);
  var want = document.getElementById("want");
  want.innerHTML = html;
  var got = document.getElementById("live").innerHTML;
  return got === want.innerHTML ? "" : "got " + got + " want " + want.innerHTML;
}
function row(id, extra) {
  return '<tr data-key="r-' + id + '"><td>' + id + '</td><td><form><input type="hidden" name="revision" value="' + id + '"><button' + (extra || "") + '>Redeploy</button></form></td></tr>';
}
`
	cases := []struct{ name, js string }{
		{"the same HTML again keeps every node", `
var bad = set('<div class="progress">termination wait · 40s left</div><button id="rollback">Rollback</button>');
var b = document.getElementById("rollback"); b.kept = 1;
bad = bad || set('<div class="progress">termination wait · 40s left</div><button id="rollback">Rollback</button>');
bad || (document.getElementById("rollback").kept === 1 ? "" : "the button was replaced by an identical update");`},
		{"a change around a button keeps the button", `
var bad = set('<div class="progress">termination wait · 40s left</div><form><button id="rollback">Rollback</button></form><button id="stop">Stop</button>');
document.getElementById("rollback").kept = 1;
bad = bad || set('<div class="progress">termination wait · 39s left</div><form><button id="rollback" title="flip back">Rollback</button></form><button id="stop" disabled>Stop</button>');
bad || (document.getElementById("rollback").kept === 1 ? "" : "the button was replaced when only the text around it changed") ||
  (document.getElementById("stop").disabled ? "" : "disabled was not set");`},
		{"an attribute that goes away goes", `
var bad = set('<button id="stop" disabled>Stop</button>');
bad = bad || set('<button id="stop">Stop</button>');
bad || (document.getElementById("stop").disabled ? "still disabled" : "");`},
		{"a keyed row keeps its button when a row comes in above it", `
var bad = set('<table><tbody>' + row("b") + row("a") + '</tbody></table>');
document.querySelectorAll("#live button").forEach(function (b) { b.kept = b.form.revision.value; });
bad = bad || set('<table><tbody>' + row("c") + row("b") + row("a") + '</tbody></table>');
var bs = document.querySelectorAll("#live button");
bad || [undefined, "b", "a"].map(function (want, i) { return bs[i].kept === want && (i === 0 || bs[i].form.revision.value === want) ? "" : "row " + i + " holds the button of " + bs[i].kept; }).join("");`},
		{"rows that go are removed, the rest stay", `
var bad = set('<table><tbody>' + row("c") + row("b") + row("a") + '</tbody></table><p>3 rows</p>');
document.querySelectorAll("#live button").forEach(function (b) { b.kept = b.form.revision.value; });
bad = bad || set('<table><tbody>' + row("a") + '</tbody></table>');
bad || (document.querySelector("#live button").kept === "a" ? "" : "the remaining row's button was replaced");`},
		{"svg and text parts update", `
var bad = set('<div class="traffic" data-traffic="blue=100"><svg viewBox="0 0 100 6"><rect class="c-blue" x="0" width="100" height="6"/></svg>blue 100%</div>');
bad = bad || set('<div class="traffic" data-traffic="blue=90,green=10"><svg viewBox="0 0 100 6"><rect class="c-blue" x="0" width="90" height="6"/><rect class="c-green" x="90" width="10" height="6"/></svg>blue 90% green 10%</div>');
bad || (document.querySelector("#live rect.c-green").namespaceURI === "http://www.w3.org/2000/svg" ? "" : "the new rect is not SVG");`},
		{"random lists of keyed and plain nodes come out as sent", `
var seed = 7;
function rnd(n) { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; }
function list() {
  var out = "", n = rnd(7);
  for (var i = 0; i < n; i++) {
    switch (rnd(4)) {
    case 0: out += row(String.fromCharCode(97 + rnd(6)), rnd(2) ? " disabled" : ""); break;
    case 1: out += "<tr><td>plain " + rnd(3) + "</td></tr>"; break;
    case 2: out += '<tr id="i' + rnd(3) + '"><td>' + rnd(3) + "</td></tr>"; break;
    default: out += "<tr><td><b>" + rnd(3) + "</b> text</td></tr>";
    }
  }
  return "<table><tbody>" + out + "</tbody></table>" + (rnd(2) ? "<p>tail</p>" : "");
}
var bad = "";
for (var k = 0; k < 500 && !bad; k++) bad = set(list());
bad;`},
	}
	for _, c := range cases {
		// The case's last expression is its verdict (eval's completion value).
		if got := eval("(function () {" + set + "return eval(" + strconv.Quote(c.js) + ");})()"); got != "" {
			t.Errorf("%s: %s", c.name, got)
		}
	}
}

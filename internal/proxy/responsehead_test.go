package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzAppendResponseHead: whatever head a target sends that fasthttp's
// parser accepts (its bare LFs made CRLFs, as answerHead does), the head the client gets (the loops pass it on raw, minus
// hop-by-hop fields, with their own framing) is one well-formed HTTP/1.1
// head: Go's client reads it, with the same status, exactly one framing
// (chunked or the target's length), and no field the proxy removes.
func FuzzAppendResponseHead(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 9\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nUpgrade: h2c\r\n\r\n",
		"HTTP/1.1 200\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\n",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\r\n",
	} {
		f.Add([]byte(seed), false, false)
	}
	f.Fuzz(func(t *testing.T, raw []byte, isHead, closing bool) {
		// As the loop takes a head (answerHead): up to its end, its bare
		// LFs made CRLFs.
		end := answerHeadEnd(raw)
		if end < 0 {
			return
		}
		raw = raw[:end]
		if !bytes.HasSuffix(raw, crlf2) {
			raw = crlfLines(nil, raw)
		}
		var rh fasthttp.ResponseHeader
		if err := rh.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil {
			return
		}
		sc := rh.StatusCode()
		if sc < 200 || sc > 999 {
			return // interim answers are relayed as they are, or dropped
		}
		frame, _ := answerFraming(&rh, isHead)
		chunked := frame.chunked()
		out := appendResponseHead(nil, raw, &rh, chunked, closing)
		method := http.MethodGet
		if isHead {
			method = http.MethodHead
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("the client cannot read the head made of %q:\n%q\n%v", raw, out, err)
		}
		if resp.StatusCode != sc {
			t.Fatalf("status %d, the target's %d (%q → %q)", resp.StatusCode, sc, raw, out)
		}
		head := string(out[:bytes.Index(out, []byte("\r\n\r\n"))+2])
		lower := strings.ToLower(head[strings.Index(head, "\r\n"):]) // the fields, past the status line
		te := strings.Count(lower, "\r\ntransfer-encoding:")
		cl := strings.Count(lower, "\r\ncontent-length:")
		switch {
		case te+cl > 1, chunked && te != 1, te == 1 && !chunked:
			t.Fatalf("framing of %q: %d Transfer-Encoding and %d Content-Length fields (chunked %v):\n%q", raw, te, cl, chunked, out)
		}
		for _, k := range []string{"connection: keep-alive", "\r\nkeep-alive:", "\r\nupgrade:", "\r\nproxy-connection:", "\r\ntrailer:"} {
			if strings.Contains(lower, k) {
				t.Fatalf("%q kept in %q", k, out)
			}
		}
		if closing != resp.Close {
			t.Fatalf("closing %v, the client reads Close %v: %q", closing, resp.Close, out)
		}
	})
}

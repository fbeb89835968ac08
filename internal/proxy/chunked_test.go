package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httputil"
	"net/textproto"
	"strings"
	"testing"
)

// The scanner is checked against Go's own chunked reader
// (httputil.NewChunkedReader, the one net/http uses) plus net/textproto for
// the trailer section, the way net/http reads a response: real code, no
// fake. Wherever the scanner accepts a body, Go must read it and end it at
// the same byte; where Go reads a body the scanner refuses, the scanner's
// error must be one of its documented strictnesses (stricterThanGo).

// validChunked are complete chunked bodies; data is what Go's reader
// decodes from them.
var validChunked = []struct {
	name, body, data string
}{
	{"zero length", "0\r\n\r\n", ""},
	{"single chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"},
	{"many chunks", "1\r\na\r\n2\r\nbc\r\nA\r\n0123456789\r\n3\r\ndef\r\n0\r\n\r\n", "abc0123456789def"},
	{"hex digits of both cases and leading zeros", "000a\r\n0123456789\r\nF\r\nABCDEFGHIJKLMNO\r\nb\r\nabcdefghijk\r\n0000\r\n\r\n",
		"0123456789ABCDEFGHIJKLMNOabcdefghijk"},
	{"16 digits", "0000000000000003\r\nabc\r\n0000000000000000\r\n\r\n", "abc"},
	{"data that looks like framing", "a\r\n0\r\n\r\nGET /\r\n0\r\n\r\n", "0\r\n\r\nGET /"},
	{"extensions", "5;name\r\nhello\r\n3;a=b;c=\"q \\\" ;x\"\r\nabc\r\n0;last=1\r\n\r\n", "helloabc"},
	{"extensions with BWS", "2; a = b ;c\t=\t\"v\"\t;d\r\nhi\r\n0;e\r\n\r\n", "hi"},
	{"quoted extension with tab, obs-text and quoted-pair", "1;q=\"\t\xe9\\\x80\\\\\"\r\nx\r\n0\r\n\r\n", "x"},
	{"token extension with every tchar", "1;!#$%&'*+-.^_`|~09azAZ=!#$%&'*+-.^_`|~09azAZ\r\nx\r\n0\r\n\r\n", "x"},
	{"trailers", "3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum:\t abc \r\nEmpty:\r\n\r\n", "abc"},
	{"trailer with obs-text", "0\r\nX: caf\xc3\xa9\r\n\r\n", ""},
	{"chunk line of 4096 bytes", "1;" + strings.Repeat("a", maxChunkLine-4) + "\r\nx\r\n0\r\n\r\n", "x"},
	{"trailer section of 16384 bytes", "0\r\nX: " + strings.Repeat("v", maxChunkTrailer-7) + "\r\n\r\n", ""},
}

// malformedChunked are bodies the scanner refuses with err.
var malformedChunked = []struct {
	name, body string
	err        error
}{
	{"empty chunk line", "\r\n", errChunkSize},
	{"no size before an extension", ";a\r\n", errChunkSize},
	{"space before the size", " 5\r\nhello\r\n0\r\n\r\n", errChunkSize},
	{"non-hex size", "g\r\n", errChunkSize},
	{"non-hex digit after hex", "5g\r\nhello\r\n0\r\n\r\n", errChunkSize},
	{"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", errChunkSize},
	{"signed size", "+5\r\nhello\r\n0\r\n\r\n", errChunkSize},
	{"second chunk's size not hex", "1\r\na\r\nz\r\n", errChunkSize},
	{"space after the size", "5 \r\nhello\r\n0\r\n\r\n", errChunkSizeSpace},
	{"tab before an extension", "5\t;x\r\nhello\r\n0\r\n\r\n", errChunkSizeSpace},
	{"17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", errChunkSizeLong},
	{"17 zeros in the last chunk", "00000000000000000\r\n\r\n", errChunkSizeLong},
	{"2^64", "10000000000000000\r\n", errChunkSizeLong},
	{"size of 2^63", "8000000000000000\r\n", errChunkSizeOverflow},
	{"size of 2^64-1", "ffffffffffffffff\r\n", errChunkSizeOverflow},
	{"bare LF after the size", "5\nhello\r\n0\r\n\r\n", errChunkLineEnd},
	{"CR not followed by LF", "5\rhello\r\n0\r\n\r\n", errChunkLineEnd},
	{"bare LF after an extension", "5;a\nhello\r\n0\r\n\r\n", errChunkLineEnd},
	{"bare LF after an extension value", "5;a=b\nhello\r\n0\r\n\r\n", errChunkLineEnd},
	{"LF in a quoted extension", "5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n", errChunkLineEnd},
	{"bare LF after the last chunk", "0\n\r\n", errChunkLineEnd},
	{"missing CRLF after data", "5\r\nhello0\r\n\r\n", errChunkDataEnd},
	{"data longer than its size", "3\r\nhello\r\n0\r\n\r\n", errChunkDataEnd},
	{"LF alone after data", "5\r\nhello\n0\r\n\r\n", errChunkDataEnd},
	{"CR alone after data", "5\r\nhello\r0\r\n\r\n", errChunkDataEnd},
	{"empty extension name", "5;\r\nhello\r\n0\r\n\r\n", errChunkExt},
	{"extension value without name", "5;=x\r\nhello\r\n0\r\n\r\n", errChunkExt},
	{"empty extension value", "5;a=\r\nhello\r\n0\r\n\r\n", errChunkExt},
	{"space inside a token value", "5;a=b c\r\nhello\r\n0\r\n\r\n", errChunkExt},
	{"whitespace before CRLF", "5;a \r\nhello\r\n0\r\n\r\n", errChunkExt},
	{"whitespace after a value before CRLF", "5;a=b\t\r\nhello\r\n0\r\n\r\n", errChunkExt},
	{"non-tchar in a name", "5;a@b\r\nhello\r\n0\r\n\r\n", errChunkExt},
	{"DEL in a value", "5;a=\x7f\r\nhello\r\n0\r\n\r\n", errChunkExt},
	{"CR in a quoted extension", "5;a=\"x\r\nhello\r\n0\r\n\r\n", errChunkExt},
	{"NUL in a quoted extension", "5;a=\"\x00\"\r\nhello\r\n0\r\n\r\n", errChunkExt},
	{"quoted-pair of CR", "5;a=\"x\\\r\"\r\nhello\r\n0\r\n\r\n", errChunkExt},
	{"text after a quoted value", "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", errChunkExt},
	{"too-long extension", "1;" + strings.Repeat("a", maxChunkLine-3) + "\r\nx\r\n0\r\n\r\n", errChunkLineLong},
	{"too-long line of zeros", "1;" + strings.Repeat("0", 5000), errChunkLineLong},
	{"bare LF ending a trailer field", "0\r\nA: b\n\r\n", errChunkTrailer},
	{"bare LF as the final line", "0\r\n\n", errChunkTrailer},
	{"trailer obs-fold", "0\r\nA: b\r\n c\r\n\r\n", errChunkTrailer},
	{"trailer starting with whitespace", "0\r\n A: b\r\n\r\n", errChunkTrailer},
	{"space before a trailer colon", "0\r\nA : b\r\n\r\n", errChunkTrailer},
	{"trailer without colon", "0\r\nAb\r\n\r\n", errChunkTrailer},
	{"trailer with empty name", "0\r\n: b\r\n\r\n", errChunkTrailer},
	{"NUL in a trailer value", "0\r\nA: b\x00\r\n\r\n", errChunkTrailer},
	{"CR alone in a trailer value", "0\r\nA: b\rc\r\n\r\n", errChunkTrailer},
	{"final CR not followed by LF", "0\r\n\rX", errChunkTrailer},
	{"too-long trailers", "0\r\nX: " + strings.Repeat("v", maxChunkTrailer-6) + "\r\n\r\n", errChunkTrailerLong},
	{"endless trailer lines", "0\r\n" + strings.Repeat("A: b\r\n", 3000), errChunkTrailerLong},
}

// stricterThanGo are the scanner's errors it may return where Go's reader
// reads the body (each is explained where it is declared, in chunked.go).
var stricterThanGo = []error{errChunkSizeOverflow, errChunkSizeSpace, errChunkExt, errChunkTrailer, errChunkTrailerLong}

// scanPieces scans the pieces in turn with a fresh scanner, as a relay
// reading them one after the other: n counts the body's bytes in all
// pieces. It checks the contract of each call on the way.
func scanPieces(t *testing.T, pieces ...[]byte) (n int, done bool, err error) {
	t.Helper()
	var s chunkScanner
	for _, p := range pieces {
		k, d, e := s.scan(p)
		if e != nil {
			return n, false, e
		}
		if !d && k != len(p) {
			t.Fatalf("scan(%q) = %d, not done, no error: want n == len(p) = %d", p, k, len(p))
		}
		if k < 0 || k > len(p) {
			t.Fatalf("scan(%q) = %d: out of range", p, k)
		}
		n += k
		if d {
			if k == 0 {
				t.Fatalf("scan(%q) says done at n=0: the body's last byte cannot be before p", p)
			}
			return n, true, nil
		}
	}
	return n, false, nil
}

// splitAt cuts p at the given offsets (ascending).
func splitAt(p []byte, at ...int) [][]byte {
	var out [][]byte
	prev := 0
	for _, a := range at {
		out = append(out, p[prev:a])
		prev = a
	}
	return append(out, p[prev:])
}

// bytewise cuts p into 1-byte pieces.
func bytewise(p []byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i : i+1]
	}
	return out
}

// sameScan fails unless a scan of some split of p gave the same result as
// the whole (errors compare by message: the offset named must not depend
// on the split).
func sameScan(t *testing.T, p []byte, how string, n int, done bool, err error, wantN int, wantDone bool, wantErr error) {
	t.Helper()
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("%q scanned %s: error %v, in one call %v", p, how, err, wantErr)
	}
	if err == nil && (n != wantN || done != wantDone) {
		t.Fatalf("%q scanned %s: n=%d done=%v, in one call n=%d done=%v", p, how, n, done, wantN, wantDone)
	}
}

func TestChunkScannerValid(t *testing.T) {
	const extra = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	for _, tc := range validChunked {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			n, done, err := scanPieces(t, body)
			if err != nil || !done || n != len(body) {
				t.Fatalf("one call: n=%d done=%v err=%v, want n=%d done", n, done, err, len(body))
			}
			// What Go's reader decodes, ending at the same byte.
			data, end, gerr := goChunked(body)
			if gerr != nil || end != len(body) || string(data) != tc.data {
				t.Fatalf("Go's reader: data %q end %d err %v, want %q end %d", data, end, gerr, tc.data, len(body))
			}
			// Bytes after the body (the next response on the connection) are
			// not part of it, however the reads fall.
			more := []byte(tc.body + extra)
			for _, pieces := range [][][]byte{{more}, bytewise(more), splitAt(more, len(body)-1), splitAt(more, len(body)+1)} {
				n, done, err := scanPieces(t, pieces...)
				if err != nil || !done || n != len(body) {
					t.Fatalf("with %d bytes after the body in %d pieces: n=%d done=%v err=%v, want n=%d done", len(extra), len(pieces), n, done, err, len(body))
				}
			}
			// Every split into 2 and (for short bodies) 3 parts, and every
			// strict prefix: a prefix is a body still going on, as when the
			// target's bytes stop coming (n == len(p), not done, no error).
			for i := 0; i <= len(body); i++ {
				if n, done, err := scanPieces(t, body[:i]); i < len(body) && (err != nil || done || n != i) {
					t.Fatalf("prefix of %d bytes: n=%d done=%v err=%v, want n=%d, not done", i, n, done, err, i)
				}
				n, done, err := scanPieces(t, splitAt(body, i)...)
				sameScan(t, body, fmt.Sprintf("split at %d", i), n, done, err, len(body), true, nil)
				if len(body) > 80 {
					continue
				}
				for j := i; j <= len(body); j++ {
					n, done, err := scanPieces(t, splitAt(body, i, j)...)
					sameScan(t, body, fmt.Sprintf("split at %d and %d", i, j), n, done, err, len(body), true, nil)
				}
			}
			if n, done, err := scanPieces(t, bytewise(body)...); err != nil || !done || n != len(body) {
				t.Fatalf("one byte a call: n=%d done=%v err=%v", n, done, err)
			}
			checkAgainstGo(t, body)
			checkAgainstGo(t, more)
		})
	}
}

func TestChunkScannerMalformed(t *testing.T) {
	for _, tc := range malformedChunked {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			_, _, err := scanPieces(t, body)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if !strings.HasPrefix(err.Error(), "malformed chunked body at byte ") {
				t.Fatalf("error %q does not say where the body is malformed", err)
			}
			// The same error at the same byte however the bytes are split.
			for i := 0; i <= len(body); i++ {
				n, done, e := scanPieces(t, splitAt(body, i)...)
				sameScan(t, body, fmt.Sprintf("split at %d", i), n, done, e, 0, false, err)
			}
			n, done, e := scanPieces(t, bytewise(body)...)
			sameScan(t, body, "one byte a call", n, done, e, 0, false, err)
			checkAgainstGo(t, body)
		})
	}
}

// The error names the offending byte by its offset in the whole body,
// across calls.
func TestChunkScannerErrorOffset(t *testing.T) {
	var s chunkScanner
	for _, p := range []string{"5\r\nhel", "lo\r\n", "1;a\n"} {
		_, _, err := s.scan([]byte(p))
		if p != "1;a\n" {
			if err != nil {
				t.Fatalf("scan(%q): %v", p, err)
			}
			continue
		}
		want := "malformed chunked body at byte 13 (LF): " + errChunkLineEnd.Error()
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v, want %s", err, want)
		}
	}
}

// Empty calls, calls after the end, calls after an error, and reset.
func TestChunkScannerLifecycle(t *testing.T) {
	var s chunkScanner
	if n, done, err := s.scan(nil); n != 0 || done || err != nil {
		t.Fatalf("empty first call: %d %v %v", n, done, err)
	}
	if n, done, err := s.scan([]byte("3\r\nab")); n != 5 || done || err != nil {
		t.Fatalf("partial: %d %v %v", n, done, err)
	}
	if n, done, err := s.scan([]byte{}); n != 0 || done || err != nil {
		t.Fatalf("empty call in the middle: %d %v %v", n, done, err)
	}
	if n, done, err := s.scan([]byte("c\r\n0\r\n\r\nNEXT")); n != 8 || !done || err != nil {
		t.Fatalf("end: %d %v %v, want 8 done", n, done, err)
	}
	if n, done, err := s.scan([]byte("NEXT")); n != 0 || !done || err != nil {
		t.Fatalf("after the end: %d %v %v, want 0 done: no byte after the end is body", n, done, err)
	}
	s.reset()
	if n, done, err := s.scan([]byte("0\r\n\r\n")); n != 5 || !done || err != nil {
		t.Fatalf("after reset: %d %v %v", n, done, err)
	}
	s.reset()
	_, _, err := s.scan([]byte("5\nhello"))
	if !errors.Is(err, errChunkLineEnd) {
		t.Fatalf("err = %v", err)
	}
	// The error sticks: the rest of a malformed body is never read as a
	// new one.
	if _, done, err2 := s.scan([]byte("0\r\n\r\n")); done || err2 != err {
		t.Fatalf("after an error: done=%v err=%v, want the same error %v", done, err2, err)
	}
	s.reset()
	if n, done, err := s.scan([]byte("0\r\n\r\n")); n != 5 || !done || err != nil {
		t.Fatalf("after reset from an error: %d %v %v", n, done, err)
	}
}

// A chunk of the largest size is skipped by count: the data costs nothing
// per byte and the int64 count does not wrap.
func TestChunkScannerHugeChunk(t *testing.T) {
	var s chunkScanner
	if _, _, err := s.scan([]byte("7fffffffffffffff\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for range 1 << 12 { // 4 GiB of data: the size of a 32-bit int
		if n, done, err := s.scan(buf); n != len(buf) || done || err != nil {
			t.Fatalf("in the chunk: %d %v %v", n, done, err)
		}
	}
	if want := int64(1<<63-1) - 1<<32; s.size != want {
		t.Fatalf("data left %d, want %d", s.size, want)
	}
	// The same chunk ends exactly where its size says.
	s = chunkScanner{state: csData, size: 3}
	if n, done, err := s.scan([]byte("abc\r\n0\r\n\r\nX")); n != 10 || !done || err != nil {
		t.Fatalf("end of a chunk: %d %v %v", n, done, err)
	}
}

func TestChunkScannerNoAllocs(t *testing.T) {
	body := benchChunkedBody()
	var s chunkScanner
	allocs := testing.AllocsPerRun(100, func() {
		s.reset()
		for p := body; len(p) > 0; {
			k := min(len(p), 16<<10)
			if _, _, err := s.scan(p[:k]); err != nil {
				t.Fatal(err)
			}
			p = p[k:]
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per body, want 0", allocs)
	}
}

// goChunked reads p the way net/http reads a chunked response: Go's
// chunked reader (from a 4096-byte bufio.Reader, as net/http's) and then
// the trailer section with net/textproto. end is where the trailer
// section ended.
func goChunked(p []byte) (data []byte, end int, err error) {
	r := bytes.NewReader(p)
	br := bufio.NewReaderSize(r, 4096)
	data, err = io.ReadAll(httputil.NewChunkedReader(br))
	if err != nil {
		return data, 0, fmt.Errorf("chunked reader: %w", err)
	}
	if _, err := textproto.NewReader(br).ReadMIMEHeader(); err != nil {
		return data, 0, fmt.Errorf("trailer: %w", err)
	}
	return data, len(p) - r.Len() - br.Buffered(), nil
}

// goOverheadLimit reports the error of Go's own guard against framing
// overhead (chunk lines beyond 16 bytes plus twice the data, over 16 KiB in
// all). It limits cost, not framing, and the scanner does not copy it: the
// relay passes framing bytes at no extra cost, and a client that refuses
// such a body drops it; it cannot misread where the body ends.
func goOverheadLimit(err error) bool {
	return err != nil && strings.Contains(err.Error(), "too much non-data")
}

// checkAgainstGo scans p in one call, one byte a call and in thirds (all
// must agree), and compares the outcome with Go's reader.
func checkAgainstGo(t *testing.T, p []byte) {
	t.Helper()
	n, done, err := scanPieces(t, p)
	for how, pieces := range map[string][][]byte{
		"one byte a call": bytewise(p),
		"in thirds":       splitAt(p, len(p)/3, 2*len(p)/3),
	} {
		n2, done2, err2 := scanPieces(t, pieces...)
		sameScan(t, p, how, n2, done2, err2, n, done, err)
	}
	data, end, gerr := goChunked(p)
	switch {
	case err != nil:
		if gerr == nil && !isStricterThanGo(err) {
			t.Fatalf("%q: Go reads %d bytes of data from it, the body ending at %d; the scanner refuses it (%v), which is not one of its documented strictnesses", p, len(data), end, err)
		}
	case done:
		data2, end2, gerr2 := goChunked(p[:n])
		if goOverheadLimit(gerr2) {
			return
		}
		if gerr2 != nil || end2 != n {
			t.Fatalf("%q: the scanner ends the body at %d; Go's reader over those %d bytes: end %d, error %v", p, n, n, end2, gerr2)
		}
		if gerr != nil || end != n || !bytes.Equal(data, data2) {
			t.Fatalf("%q: the scanner ends the body at %d; Go over all the bytes: end %d, error %v, data %q (%q up to %d)", p, n, end, gerr, data, data2, n)
		}
	default:
		if gerr == nil {
			t.Fatalf("%q: Go's reader ends the body at %d, the scanner wants more after %d bytes", p, end, n)
		}
	}
}

// The one difference the other way: Go refuses a body whose framing
// outweighs its data (its overhead budget); the scanner accepts it and ends
// it where Go would have. If Go's message changes, goOverheadLimit must too.
func TestChunkScannerGoOverheadLimit(t *testing.T) {
	body := []byte(strings.Repeat("1;"+strings.Repeat("a", 4000)+"\r\nx\r\n", 10) + "0\r\n\r\n")
	n, done, err := scanPieces(t, body)
	if err != nil || !done || n != len(body) {
		t.Fatalf("scanner: n=%d done=%v err=%v, want the whole %d bytes", n, done, err, len(body))
	}
	if _, _, gerr := goChunked(body); !goOverheadLimit(gerr) {
		t.Fatalf("Go's reader: %v, want its overhead error", gerr)
	}
	checkAgainstGo(t, body)
}

func isStricterThanGo(err error) bool {
	for _, e := range stricterThanGo {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// randomChunked makes a chunked body from valid and (now and then) invalid
// pieces, then maybe damages it and appends bytes, for the differential
// test.
func randomChunked(r *rand.Rand) []byte {
	// pick chooses one of good, or once in 8 one of bad.
	pick := func(good, bad []string) string {
		if len(bad) > 0 && r.IntN(8) == 0 {
			return bad[r.IntN(len(bad))]
		}
		return good[r.IntN(len(good))]
	}
	goodExts := []string{"", "", "", ";a", ";a=b", ";a=\"q\\\"x\"", "; a = b", ";a;b=\"\""}
	badExts := []string{";a ", ";", ";a=\"x", ";a=\"\r\n\"", ";a\n", "\t", " ", ";a\r"}
	var b []byte
	for range r.IntN(4) {
		size := 1 + r.IntN(20)
		b = fmt.Appendf(b, pick([]string{"%x", "%X", "%03x", "%016x"}, []string{" %x", "%017x", "%x\n"}), size)
		b = append(b, pick(goodExts, badExts)...)
		b = append(b, "\r\n"...)
		for range size {
			b = append(b, pick([]string{"a", "\r", "\n", "0", ";", " "}, nil)...)
		}
		b = append(b, pick([]string{"\r\n"}, []string{"\n", "", "\r\n\r\n", "\r"})...)
	}
	b = append(b, pick([]string{"0", "00", "0000000000000000"}, []string{"00000000000000000", ""})...)
	b = append(b, pick(goodExts, badExts)...)
	b = append(b, "\r\n"...)
	for range r.IntN(3) {
		b = append(b, pick([]string{"A: b", "X-Sum:\t1 ", "Empty:", "a:\x80"}, []string{" fold", "A : b", "A:b\x00", "A", ":b"})...)
		b = append(b, pick([]string{"\r\n"}, []string{"\n", "\r"})...)
	}
	b = append(b, pick([]string{"\r\n"}, []string{"\n", "\r", ""})...)
	if r.IntN(4) == 0 {
		for range 1 + r.IntN(3) {
			i := r.IntN(len(b) + 1)
			c := "\r\n \t;=\"\\0ag:\x00\x7f\x80"[r.IntN(15)]
			switch r.IntN(3) {
			case 0:
				b = append(b[:i], append([]byte{c}, b[i:]...)...)
			case 1:
				if i < len(b) {
					b[i] = c
				}
			case 2:
				if i < len(b) {
					b = append(b[:i], b[i+1:]...)
				}
			}
		}
	}
	if r.IntN(3) == 0 {
		b = append(b, pick([]string{"HTTP/1.1 200 OK\r\n\r\n", "0\r\n\r\n", "\r\n"}, nil)...)
	}
	return b
}

func TestChunkScannerAgainstGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var accepted, refused, partial int
	for range 20000 {
		p := randomChunked(r)
		checkAgainstGo(t, p)
		switch _, done, err := scanPieces(t, p); {
		case done:
			accepted++
		case err != nil:
			refused++
		default:
			partial++
		}
	}
	t.Logf("generated bodies: %d accepted, %d refused, %d unfinished", accepted, refused, partial)
	// The generator must exercise both sides, or the test proves little.
	if accepted < 1000 || refused < 1000 {
		t.Fatalf("generated %d bodies the scanner accepts and %d it does not: want both above 1000", accepted, refused)
	}
}

func FuzzChunkScanner(f *testing.F) {
	for _, tc := range validChunked {
		f.Add([]byte(tc.body))
	}
	for _, tc := range malformedChunked {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		checkAgainstGo(t, p)
	})
}

// benchChunkedBody is a 64 KiB body in 4 KiB chunks.
func benchChunkedBody() []byte {
	var b []byte
	data := bytes.Repeat([]byte("x"), 4<<10)
	for range 16 {
		b = fmt.Appendf(b, "%x\r\n", len(data))
		b = append(b, data...)
		b = append(b, "\r\n"...)
	}
	return append(b, "0\r\n\r\n"...)
}

func BenchmarkChunkScanner(b *testing.B) {
	body := benchChunkedBody()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var s chunkScanner
	for b.Loop() {
		s.reset()
		for p := body; len(p) > 0; {
			k := min(len(p), 16<<10)
			n, done, err := s.scan(p[:k])
			if err != nil {
				b.Fatal(err)
			}
			if done {
				if n != len(p) {
					b.Fatalf("done %d bytes before the end", len(p)-n)
				}
				break
			}
			p = p[k:]
		}
	}
}

package proxy

import (
	"errors"
	"fmt"
)

// The chunk scanner finds where a chunked response body (RFC 9112 §7.1)
// ends while its bytes stream from a target to a client unchanged. The
// relay passes the framing through verbatim, so the scanner and whatever
// client reads the bytes must never disagree on where the body ends: if they
// did, bytes the proxy treats as the next response would be body to the
// client, or the reverse (response desync). The scanner is therefore
// strict: it accepts the RFC grammar with bounded lengths and nothing more,
// and anything else drops the connection (a target that sends it is broken,
// and a relayed response it cannot frame is worse than none).
//
//	chunked-body    = *chunk last-chunk trailer-section CRLF
//	chunk           = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//	chunk-size      = 1*HEXDIG
//	last-chunk      = 1*("0") [ chunk-ext ] CRLF
//	chunk-ext       = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//	chunk-ext-name  = token
//	chunk-ext-val   = token / quoted-string
//	trailer-section = *( field-line CRLF )
//	field-line      = field-name ":" OWS field-value OWS
//
// Where it is stricter than the grammar, or than Go's own reader
// (net/http/internal.chunkedReader, which net/http and httputil use), it
// says so below; chunked_test.go checks the scanner against Go's reader and
// allows a difference only for the errors listed in stricterThanGo there.
// The one place Go refuses what the scanner accepts is Go's budget on
// framing overhead (a body of tiny chunks with long extensions): a limit on
// the reader's work, not on framing, so a client that applies it drops the
// body; it cannot misread where the body ends. The relay passes framing at
// no extra cost, so the scanner has no such budget beyond its line bounds.
const (
	// maxChunkSizeDigits bounds chunk-size, leading zeros included: Go's
	// reader refuses a 17th digit too, so the two agree, and a size that
	// long is either an attack or a bug.
	maxChunkSizeDigits = 16
	// maxChunkLine bounds a chunk line (size, extensions and CRLF). Go's
	// reader reads the line into its 4096-byte buffer and fails when the
	// line does not fit: with the same bound both accept exactly the same
	// lines. Extensions are rare and short in practice.
	maxChunkLine = 4096
	// maxChunkTrailer bounds the trailer section: every byte after the
	// last-chunk line, field lines and the final CRLF included. Go's server
	// and transport only take a trailer that fits their 4 KiB buffer;
	// 16 KiB leaves room for the rest while bounding a target that never
	// ends its trailer (it would otherwise hold the relay forever for
	// framing bytes).
	maxChunkTrailer = 16 << 10
)

// The errors of a malformed chunked body. scan wraps them with the offset
// and value of the offending byte; tests match them with errors.Is.
var (
	// No whitespace before the size: the grammar has none, and Go refuses
	// it too.
	errChunkSize     = errors.New("want a chunk size of hex digits at the start of a chunk line")
	errChunkSizeLong = errors.New("chunk size has more than 16 hex digits")
	// Stricter than Go (which reads up to 16 digits into a uint64): a size
	// of 2^63 or more is refused. No real body gets there; the relay counts
	// in int64.
	errChunkSizeOverflow = errors.New("chunk size does not fit in 63 bits")
	// Stricter than the grammar (which allows BWS before ";") and than Go
	// (which trims trailing whitespace of the line): no whitespace after the
	// size. Go refuses "5 ;x", so a body with BWS before ";" would break at
	// a Go client anyway; senders must not generate BWS (RFC 9110 §5.6.3).
	errChunkSizeSpace = errors.New("whitespace after the chunk size")
	// Stricter than Go, which ignores everything after the first ";": the
	// extensions must follow the grammar (token names, token or
	// quoted-string values, BWS only around ";" and "="). A CTL, CR or LF
	// inside an extension is where parsers have been shown to disagree on
	// where the line ends (chunk-extension smuggling); none gets through.
	errChunkExt      = errors.New("malformed chunk extension")
	errChunkLineLong = errors.New("chunk line longer than 4096 bytes")
	// A chunk line must end in CRLF: a bare LF, or a CR not followed by LF,
	// is refused (RFC 9112 §7.1 erratum 7633; Go refuses it too).
	errChunkLineEnd = errors.New("chunk line does not end in CRLF")
	errChunkDataEnd = errors.New("chunk data is not followed by CRLF (the chunk size disagrees with the data)")
	// Stricter than Go's trailer reader (net/textproto, which accepts a bare
	// LF, continuation lines and a space before ":"): a field line is
	// token ":" then bytes of HTAB, SP, VCHAR or obs-text, ended by CRLF; an
	// obs-fold (a line starting with SP or HTAB) is refused, since a relay
	// cannot replace it with spaces without rewriting the bytes (RFC 9112
	// §5.2 allows refusing it). Which fields appear (even Content-Length or
	// Transfer-Encoding) does not change the framing and is left to the
	// client.
	errChunkTrailer     = errors.New("malformed trailer section (want field lines name:value ended by CRLF, then an empty line)")
	errChunkTrailerLong = errors.New("trailer section longer than 16384 bytes")
)

// chunkState is where the scanner is in the grammar; the chunk-line states
// come first and the trailer states last, so scan can tell which length
// bound a byte counts against by comparing.
type chunkState uint8

const (
	csSize0         chunkState = iota // start of a chunk line: want the first digit of chunk-size
	csSize                            // in chunk-size
	csExtName0                        // after ";": BWS, then a chunk-ext-name
	csExtName                         // in a chunk-ext-name
	csExtNameBWS                      // BWS after a name: want "=" or ";"
	csExtVal0                         // after "=": BWS, then a token or a quoted-string
	csExtToken                        // in a token value
	csExtQuoted                       // in a quoted-string value
	csExtQuotedPair                   // after "\" in a quoted-string
	csExtQuotedEnd                    // right after a quoted-string's closing quote
	csExtValBWS                       // BWS after a value: want ";"
	csLineLF                          // after the CR ending a chunk line: want LF
	csData                            // in chunk-data (skipped by count, not by byte)
	csDataCR                          // after chunk-data: want CR
	csDataLF                          // want the LF after chunk-data
	csTrailer0                        // start of a trailer field line, or of the final CRLF
	csTrailerName                     // in a field-name
	csTrailerValue                    // after ":", in the field value
	csTrailerLF                       // after the CR ending a field line: want LF
	csEndLF                           // after the CR of the final CRLF: want LF
	csDone                            // the body has ended
)

// chunkScanner follows the framing of a chunked body (RFC 9112 §7.1) in
// bytes as they stream by, without copying them. The zero value is ready for
// a body; scan never allocates unless the body is malformed.
type chunkScanner struct {
	state  chunkState
	digits uint8 // hex digits of chunk-size so far
	count  int   // bytes of the current chunk line, or of the trailer section
	size   int64 // chunk-size so far, then the chunk-data still to come
	off    int64 // bytes of the body scanned before this call, for errors
	err    error // sticky: the body is malformed
}

// scan consumes p, the next bytes of the body, and returns how many of them
// belong to the body: n == len(p) while the body goes on; when the body's
// last byte (the CRLF after the last-chunk and its trailer section) is in
// p, n is its index+1 and done is true. err != nil (with n meaningless) when
// the framing is malformed: the caller then drops the connection.
//
// Once done, scan returns 0, true, nil (no further byte is body) until
// reset; once failed, it returns the same error.
func (s *chunkScanner) scan(p []byte) (n int, done bool, err error) {
	if s.err != nil {
		return 0, false, s.err
	}
	if s.state == csDone {
		return 0, true, nil
	}
	i := 0
	for i < len(p) {
		if s.state == csData {
			// The middle of a chunk costs O(1) whatever its size.
			if rest := int64(len(p) - i); rest < s.size {
				s.size -= rest
				break
			}
			i += int(s.size)
			s.size = 0
			s.state = csDataCR
			continue
		}
		c := p[i]
		i++
		if err := s.step(c); err != nil {
			s.err = fmt.Errorf("malformed chunked body at byte %d (%s): %w", s.off+int64(i-1), describeByte(c), err)
			return 0, false, s.err
		}
		if s.state == csDone {
			s.off += int64(i)
			return i, true, nil
		}
	}
	s.off += int64(len(p))
	return len(p), false, nil
}

// reset makes s ready for another body.
func (s *chunkScanner) reset() { *s = chunkScanner{} }

// step moves the state machine over one framing byte.
func (s *chunkScanner) step(c byte) error {
	switch {
	case s.state < csData:
		s.count++
		if s.count > maxChunkLine {
			return errChunkLineLong
		}
	case s.state >= csTrailer0:
		s.count++
		if s.count > maxChunkTrailer {
			return errChunkTrailerLong
		}
	}
	class := chunkClass[c]
	switch s.state {
	case csSize0, csSize:
		if class&ccHex != 0 {
			s.digits++
			if s.digits > maxChunkSizeDigits {
				return errChunkSizeLong
			}
			if s.size >= 1<<59 { // another digit would reach 2^63
				return errChunkSizeOverflow
			}
			s.size = s.size<<4 | int64(unhex(c))
			s.state = csSize
			return nil
		}
		if s.state == csSize0 { // no digit yet, also no whitespace before the size
			return errChunkSize
		}
		switch c {
		case ';':
			s.state = csExtName0
		case '\r':
			s.state = csLineLF
		case ' ', '\t':
			return errChunkSizeSpace
		case '\n':
			return errChunkLineEnd
		default:
			return errChunkSize
		}
	case csExtName0:
		switch {
		case class&ccTchar != 0:
			s.state = csExtName
		case c == ' ' || c == '\t':
		default:
			return extErr(c)
		}
	case csExtName:
		switch {
		case class&ccTchar != 0:
		case c == '=':
			s.state = csExtVal0
		case c == ';':
			s.state = csExtName0
		case c == '\r':
			s.state = csLineLF
		case c == ' ' || c == '\t':
			s.state = csExtNameBWS
		default:
			return extErr(c)
		}
	case csExtNameBWS:
		switch c {
		case ' ', '\t':
		case '=':
			s.state = csExtVal0
		case ';':
			s.state = csExtName0
		default:
			return extErr(c)
		}
	case csExtVal0:
		switch {
		case c == ' ' || c == '\t':
		case c == '"':
			s.state = csExtQuoted
		case class&ccTchar != 0:
			s.state = csExtToken
		default:
			return extErr(c)
		}
	case csExtToken:
		switch {
		case class&ccTchar != 0:
		case c == ';':
			s.state = csExtName0
		case c == '\r':
			s.state = csLineLF
		case c == ' ' || c == '\t':
			s.state = csExtValBWS
		default:
			return extErr(c)
		}
	case csExtQuoted:
		switch {
		case c == '"':
			s.state = csExtQuotedEnd
		case c == '\\':
			s.state = csExtQuotedPair
		case class&ccQdtext != 0:
		default:
			return extErr(c)
		}
	case csExtQuotedPair:
		// quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ): the field
		// value bytes, which exclude CR and LF.
		if class&ccValue == 0 {
			return extErr(c)
		}
		s.state = csExtQuoted
	case csExtQuotedEnd:
		switch c {
		case ';':
			s.state = csExtName0
		case '\r':
			s.state = csLineLF
		case ' ', '\t':
			s.state = csExtValBWS
		default:
			return extErr(c)
		}
	case csExtValBWS:
		switch c {
		case ' ', '\t':
		case ';':
			s.state = csExtName0
		default:
			return extErr(c) // trailing whitespace before CRLF included
		}
	case csLineLF:
		if c != '\n' {
			return errChunkLineEnd
		}
		s.count, s.digits = 0, 0
		if s.size == 0 { // the last-chunk: the trailer section follows
			s.state = csTrailer0
		} else {
			s.state = csData // s.size is now the data to skip
		}
	case csDataCR:
		if c != '\r' {
			return errChunkDataEnd
		}
		s.state = csDataLF
	case csDataLF:
		if c != '\n' {
			return errChunkDataEnd
		}
		s.state = csSize0
	case csTrailer0:
		switch {
		case c == '\r':
			s.state = csEndLF
		case class&ccTchar != 0:
			s.state = csTrailerName
		default: // obs-fold, bare LF, empty field name
			return errChunkTrailer
		}
	case csTrailerName:
		switch {
		case class&ccTchar != 0:
		case c == ':':
			s.state = csTrailerValue
		default: // whitespace before ":" included (RFC 9112 §5.1)
			return errChunkTrailer
		}
	case csTrailerValue:
		switch {
		case class&ccValue != 0:
		case c == '\r':
			s.state = csTrailerLF
		default:
			return errChunkTrailer
		}
	case csTrailerLF:
		if c != '\n' {
			return errChunkTrailer
		}
		s.state = csTrailer0
	case csEndLF:
		if c != '\n' {
			return errChunkTrailer
		}
		s.state = csDone
	}
	return nil
}

// extErr is the error for byte c where an extension cannot have it: an LF
// there ends the line without its CR.
func extErr(c byte) error {
	if c == '\n' {
		return errChunkLineEnd
	}
	return errChunkExt
}

// Byte classes of the grammar, as bits of chunkClass.
const (
	ccHex    = 1 << iota // HEXDIG
	ccTchar              // tchar, the bytes of a token (RFC 9110 §5.6.2)
	ccQdtext             // qdtext: HTAB, SP, VCHAR but '"' and '\', obs-text (§5.6.4)
	ccValue              // field value bytes: HTAB, SP, VCHAR, obs-text (§5.5)
)

var chunkClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			t[c] |= ccHex
		}
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			t[c] |= ccTchar
		}
		switch c {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			t[c] |= ccTchar
		}
		if c == '\t' || (c >= ' ' && c != 0x7f) {
			t[c] |= ccValue
			if c != '"' && c != '\\' {
				t[c] |= ccQdtext
			}
		}
	}
	return t
}()

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// describeByte shows a byte in an error: printable ASCII as itself, the
// rest in hex (the usual culprits are CR, LF and SP).
func describeByte(c byte) string {
	switch {
	case c == '\r':
		return "CR"
	case c == '\n':
		return "LF"
	case c == ' ':
		return "SP"
	case c > ' ' && c < 0x7f:
		return fmt.Sprintf("%q", c)
	default:
		return fmt.Sprintf("0x%02x", c)
	}
}

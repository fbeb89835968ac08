package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// inMemory is how much of a body is held in memory before its signature
// is known; the rest waits in a temporary file. A forged request thus
// costs this much memory (plus a copy buffer) whatever its size.
const inMemory = 64 << 10

// ErrTooLarge means the body is over GitHub's own 25 MB limit (answer 413).
var ErrTooLarge = errors.New("webhook body too large")

// readSigned reads r's body, at most maxBody bytes, through an HMAC-SHA256
// with secret, and returns it only if the MAC equals the hex digest in
// signature ("sha256=…"); otherwise ErrUnauthorized (or ErrTooLarge). A
// Content-Length over the limit is refused before anything is read.
func readSigned(r *http.Request, secret []byte, signature string) ([]byte, error) {
	want, err := hex.DecodeString(strings.TrimPrefix(signature, "sha256="))
	if err != nil || len(want) != sha256.Size {
		return nil, ErrUnauthorized
	}
	if r.ContentLength > maxBody {
		return nil, fmt.Errorf("%w: Content-Length %d is over %d bytes", ErrTooLarge, r.ContentLength, maxBody)
	}
	mac := hmac.New(sha256.New, secret)
	body := io.TeeReader(http.MaxBytesReader(nil, r.Body, maxBody), mac)
	var head bytes.Buffer
	n, err := io.CopyN(&head, body, inMemory)
	var spill *os.File
	if err == nil && n == inMemory { // more may follow: keep it on disk until the MAC is known
		if slots, ok := r.Context().Value(spillKey{}).(*spillSlots); ok {
			release, ok := slots.take(r.RemoteAddr)
			if !ok {
				return nil, ErrBusy
			}
			defer release()
		}
		if spill, err = os.CreateTemp("", "cutover-webhook-*"); err != nil {
			return nil, fmt.Errorf("webhook: buffering a large body: %w", err)
		}
		defer func() { spill.Close(); os.Remove(spill.Name()) }()
		_, err = io.Copy(spill, body)
	}
	if err != nil && err != io.EOF {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, fmt.Errorf("%w: body larger than %d bytes", ErrTooLarge, maxBody)
		}
		return nil, fmt.Errorf("%w: reading the body: %v", ErrBadPayload, err)
	}
	if !hmac.Equal(mac.Sum(nil), want) {
		return nil, ErrUnauthorized
	}
	if spill == nil {
		return head.Bytes(), nil
	}
	if _, err := spill.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("webhook: reading a large body back: %w", err)
	}
	if _, err := head.ReadFrom(spill); err != nil {
		return nil, fmt.Errorf("webhook: reading a large body back: %w", err)
	}
	return head.Bytes(), nil
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBody bounds a JSON request body of the API: every request it takes is
// a few short strings.
const maxBody = 64 << 10

// bodyError is a request body the API refuses, with its status: 400 for
// bad JSON (naming the field), 413 for a body over maxBody.
type bodyError struct {
	code int
	msg  string
}

func (e *bodyError) Error() string { return e.msg }

// decodeBody decodes the JSON object of r's body into dst, refusing
// unknown fields, a wrong type (naming the field), trailing data and a
// body over maxBody. An empty body leaves dst as it is when optional.
// shape is the body's form, for the error message.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any, optional bool, shape string) error {
	var raw json.RawMessage
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	err := dec.Decode(&raw)
	if err == nil {
		if dec.More() || dec.Decode(&struct{}{}) != io.EOF {
			err = errors.New("data after the JSON object")
		} else if raw[0] != '{' {
			return &bodyError{http.StatusBadRequest, fmt.Sprintf("the body is %s, not a JSON object; it must be %s", jsonKind(raw[0]), shape)}
		} else {
			strict := json.NewDecoder(bytes.NewReader(raw))
			strict.DisallowUnknownFields()
			err = strict.Decode(dst)
		}
	}
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF) && optional:
		return nil
	case errors.As(err, &tooBig):
		return &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes; the body must be %s", maxBody, shape)}
	case errors.Is(err, io.EOF):
		return &bodyError{http.StatusBadRequest, "empty request body; the body must be " + shape}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &bodyError{http.StatusBadRequest, "malformed JSON: the body ends inside the object; it must be " + shape}
	case errors.As(err, &typeErr):
		return &bodyError{http.StatusBadRequest, fmt.Sprintf("field %q: a JSON %s where %s is expected; the body must be %s", typeErr.Field, typeErr.Value, typeErr.Type, shape)}
	case errors.As(err, &syntaxErr):
		return &bodyError{http.StatusBadRequest, fmt.Sprintf("malformed JSON at byte %d: %v; the body must be %s", syntaxErr.Offset, err, shape)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return &bodyError{http.StatusBadRequest, fmt.Sprintf("unknown field %s; the body must be %s", strings.TrimPrefix(err.Error(), "json: unknown field "), shape)}
	default:
		return &bodyError{http.StatusBadRequest, fmt.Sprintf("%v; the body must be %s", err, shape)}
	}
}

// jsonKind names the JSON value that starts with b.
func jsonKind(b byte) string {
	switch b {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// writeBodyError answers a decodeBody error.
func writeBodyError(w http.ResponseWriter, err error) {
	var be *bodyError
	if errors.As(err, &be) {
		writeError(w, be.code, be)
		return
	}
	writeError(w, http.StatusBadRequest, err)
}

// missingField is the 400 of a required field left empty.
func missingField(w http.ResponseWriter, field, shape string) {
	writeError(w, http.StatusBadRequest, fmt.Errorf("field %q is required; the body must be %s", field, shape))
}

// noBody refuses a body other than {} (or none) for a route that takes no
// fields; it answers the error itself and reports whether to go on.
func noBody(w http.ResponseWriter, r *http.Request) bool {
	if err := decodeBody(w, r, &struct{}{}, true, "{} or empty"); err != nil {
		writeBodyError(w, err)
		return false
	}
	return true
}

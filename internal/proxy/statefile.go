package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cutoverdev/cutover/internal/atomicfile"
	"io"
	"os"
)

// saved is the content of state.json: the last accepted state and its generation.
type saved struct {
	Generation uint64 `json:"generation"`
	State      State  `json:"state"`
}

// maxStateBytes bounds a state read from the admin API or state.json.
const maxStateBytes = 8 << 20

// decodeJSON reads exactly one JSON value into v, rejecting unknown fields
// so a misspelt field is reported instead of silently ignored.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, maxStateBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty body: send a JSON object")
		}
		return fmt.Errorf("bad JSON: %v", err)
	}
	if dec.More() {
		return errors.New("bad JSON: more than one value in the body")
	}
	return nil
}

// loadSaved reads path; a missing file is an empty state at generation 0.
func loadSaved(path string) (saved, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return saved{}, nil
	}
	if err != nil {
		return saved{}, err
	}
	defer f.Close()
	var s saved
	if err := decodeJSON(f, &s); err != nil {
		return saved{}, fmt.Errorf("%s: %v (fix or remove the file; it holds the proxy's routes)", path, err)
	}
	return s, nil
}

// SavedState is the routing state the proxy of home persisted (what the
// next proxy started there serves), read without it: an empty state when
// there is no file. Only the proxy writes the file.
func SavedState(home string) (State, error) {
	s, err := loadSaved(statePath(home))
	return s.State, err
}

func saveState(path string, s saved) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600)
}

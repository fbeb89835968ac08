package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// writeFileAtomic replaces path with data so that a crash at any moment
// leaves either the old or the new content: temp file in the same
// directory, fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func saveState(path string, s saved) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), 0o600)
}

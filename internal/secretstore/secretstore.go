// Package secretstore keeps the secret values of a project's local
// environments: the values of the variables services.NAME.secrets names.
//
// cutover.yaml is committed, so it names secrets and never holds them. The
// values live in one JSON file per environment,
// $CUTOVER_HOME/secrets/PROJECT/ENV.json, mode 0600 in a 0700 directory,
// written whole (atomicfile) under a lock, and are read when a task starts:
// they are never copied into the state store, a revision, an image or a log.
// A file that other users may read is refused, as ssh refuses such a key.
package secretstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cutoverdev/cutover/internal/atomicfile"
	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/mask"
)

// Store is one project's secret values, by environment.
type Store struct {
	dir string // $CUTOVER_HOME/secrets/PROJECT; empty: no store (nothing is set)
}

// Open is the store of project under home. Nothing is created until a value is set.
func Open(home, project string) Store {
	return Store{dir: filepath.Join(home, "secrets", project)}
}

// File is where env's values are kept.
func (s Store) File(env string) string { return filepath.Join(s.dir, env+".json") }

// check refuses an environment, or names, that are not one (no path may
// leave the store's directory).
func (s Store) check(env string, names ...string) error {
	if s.dir == "" {
		return errors.New("no secret store: cutover has no home directory")
	}
	if !config.IsLabel(env) {
		return fmt.Errorf("environment %q: not an environment name (lowercase letters, digits and dashes)", env)
	}
	for _, name := range names {
		if !config.IsVariableName(name) {
			return fmt.Errorf("secret %q: not a variable name (use letters, digits and _, not starting with a digit)", name)
		}
	}
	return nil
}

// Values reads env's values: none when nothing was set.
func (s Store) Values(env string) (map[string]string, error) {
	if err := s.check(env); err != nil {
		return nil, err
	}
	return s.read(env)
}

func (s Store) read(env string) (map[string]string, error) {
	path := s.File(env)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secrets of %s: %w", env, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets of %s: %w", env, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secrets of %s: %s may be read by other users (mode %04o): run chmod 600 %s, and change the values it holds if others could read them", env, path, perm, path)
	}
	if st, ok := fi.Sys().(*unix.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return nil, fmt.Errorf("secrets of %s: %s belongs to another user (uid %d): cutover reads only its own user's secrets", env, path, st.Uid)
	}
	values := map[string]string{}
	if err := json.NewDecoder(f).Decode(&values); err != nil {
		return nil, fmt.Errorf("secrets of %s: %s is damaged (%v): remove it and set the values again with cutover secrets set %s NAME", env, path, syntaxOnly(err), env)
	}
	for k, v := range values {
		if !config.IsVariableName(k) {
			return nil, fmt.Errorf("secrets of %s: %s holds %q, which is not a variable name: remove it with cutover secrets unset %s NAME, or remove the file", env, path, k, env)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("secrets of %s: the value of %s in %s holds a NUL byte, which no environment variable can: set it again with cutover secrets set %s %s (for binary data, its base64)", env, k, path, env, k)
		}
	}
	return values, nil
}

// syntaxOnly is a JSON error without the bytes that caused it (a value's).
func syntaxOnly(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("not JSON at byte %d", se.Offset)
	}
	return "not a JSON object of strings"
}

// Set gives name a value in env, and says whether it replaced one.
func (s Store) Set(env, name, value string) (replaced bool, err error) {
	if err := s.check(env, name); err != nil {
		return false, err
	}
	if value == "" {
		return false, fmt.Errorf("secret %s: the value is empty (give it on standard input; to remove the secret run cutover secrets unset %s %s)", name, env, name)
	}
	if strings.ContainsRune(value, 0) {
		// No environment variable can hold one: the engine would refuse
		// the task with an error that quotes the variable, value and all.
		return false, fmt.Errorf("secret %s: the value holds a NUL byte, which an environment variable cannot (for binary data, set its base64 encoding)", name)
	}
	err = s.update(env, func(values map[string]string) bool {
		_, replaced = values[name]
		values[name] = value
		return true
	})
	return replaced, err
}

// Unset removes name from env, and says whether it had a value.
func (s Store) Unset(env, name string) (removed bool, err error) {
	if err := s.check(env, name); err != nil {
		return false, err
	}
	err = s.update(env, func(values map[string]string) bool {
		_, removed = values[name]
		delete(values, name)
		return removed
	})
	return removed, err
}

// update changes env's values under the store's lock, so two commands
// setting values at once both keep theirs.
func (s Store) update(env string, change func(map[string]string) bool) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("secrets of %s: %w", env, err)
	}
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return fmt.Errorf("secrets of %s: %w", env, err)
	}
	lock, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("secrets of %s: %w", env, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("secrets of %s: lock: %w", env, err)
	}
	// A writer killed mid-write (kill -9) leaves its temporary file,
	// values and all; under the lock no other write is in progress.
	if stale, _ := filepath.Glob(filepath.Join(s.dir, "."+env+".json.*")); len(stale) > 0 {
		for _, f := range stale {
			_ = os.Remove(f)
		}
	}
	values, err := s.read(env)
	if err != nil {
		return err
	}
	if !change(values) {
		return nil
	}
	data, err := json.MarshalIndent(values, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.File(env), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("secrets of %s: %w", env, err)
	}
	return nil
}

// Lookup is the values of names in env, or a MissingError naming every
// name env has no value for.
func (s Store) Lookup(env string, names []string) (map[string]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	values, err := s.Values(env)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(names))
	var missing []string
	for _, n := range names {
		v, ok := values[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		out[n] = v
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, MissingError{Env: env, Names: slices.Compact(missing)}
	}
	return out, nil
}

// MissingError is secrets cutover.yaml names that an environment has no value for.
type MissingError struct {
	Env   string
	Names []string
}

func (e MissingError) Error() string {
	noun, each := "secret", "it"
	if len(e.Names) > 1 {
		noun, each = "secrets", "each"
	}
	return fmt.Sprintf("%s has no value for the %s %s that cutover.yaml names: set %s with %s (it reads the value from standard input)",
		e.Env, noun, strings.Join(e.Names, ", "), each, strings.Join(e.Commands(), "; "))
}

// Commands are the commands that set the missing values, one per name.
func (e MissingError) Commands() []string {
	cmds := make([]string, len(e.Names))
	for i, n := range e.Names {
		cmds[i] = "cutover secrets set " + e.Env + " " + n
	}
	return cmds
}

// Mask replaces every value of values in s with ***, in any form mask.New
// knows (each line of a multi-line value, its JSON-escaped and quoted
// forms, its base64...). For what cutover copies from a task (its last log
// lines) or from the engine's errors into what it records or shows.
func Mask(s string, values map[string]string) string {
	if len(values) == 0 {
		return s
	}
	return mask.New(values).Replace(s)
}

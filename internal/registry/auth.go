package registry

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/cutoverdev/cutover/internal/atomicfile"
)

// Username is the user cutover's own pushes authenticate as.
const Username = "cutover"

// CredentialFile is where LoadCredential keeps the registry's password,
// inside cutover's state directory, readable by its owner only.
const CredentialFile = "registry.credential"

// LoadCredential returns the registry password kept in home, creating a new
// random one (0600) the first time. A file others may read is narrowed to
// 0600 first, so the password never stays exposed.
func LoadCredential(home string) (string, error) {
	path := filepath.Join(home, CredentialFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		cred := rand.Text() + rand.Text()
		if err := atomicfile.Write(path, []byte(cred+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("registry: cannot write the registry credential %s: %w", path, err)
		}
		return cred, nil
	} else if err != nil {
		return "", fmt.Errorf("registry: cannot read the registry credential %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return "", fmt.Errorf("registry: %s is readable by others and cannot be narrowed to 0600: %w", path, err)
		}
	}
	cred := strings.TrimSpace(string(b))
	if len(cred) < 32 {
		return "", fmt.Errorf("registry: %s holds no usable credential (delete it: a new one is generated)", path)
	}
	return cred, nil
}

// guard lets anyone read (pull) and only the holder of the credential write
// (push); deletes need the credential and Options.AllowDelete.
//
// The base endpoint /v2/ challenges a client that sends no credentials:
// that is how the Docker engine learns to send the ones it was given on a
// push. cutover's own pulls send them too (so they pass the challenge);
// plain HTTP reads of manifests and blobs need none.
func guard(next http.Handler, credential string, allowDelete bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		base := r.URL.Path == "/v2/" || r.URL.Path == "/v2"
		_, _, sent := r.BasicAuth()
		switch {
		case r.Method == http.MethodDelete && !allowDelete:
			registryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "deletes are disabled in cutover's registry")
		case read && !base && !sent:
			next.ServeHTTP(w, r)
		case !authorized(r, credential):
			w.Header().Set("WWW-Authenticate", `Basic realm="cutover registry"`)
			registryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "pushing to cutover's registry needs the credential cutover holds")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func authorized(r *http.Request, credential string) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || credential == "" {
		return false
	}
	u := subtle.ConstantTimeCompare([]byte(user), []byte(Username))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(credential))
	return u&p == 1
}

// registryError answers in the registry API's error format.
func registryError(w http.ResponseWriter, code int, errCode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`+"\n", errCode, msg)
}

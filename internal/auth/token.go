package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/cutoverdev/cutover/internal/store"
)

// TokenPrefix starts every token, so a leaked one is easy to recognise
// (and to search for) in logs and repositories.
const TokenPrefix = "cutover_"

// tokenRE is a well-formed token: the prefix and 52 base32 characters
// (two rand.Text values: 256 random bits).
var tokenRE = regexp.MustCompile(`^` + TokenPrefix + `[A-Z2-7]{52}$`)

// nameRE allows names that can also be Git host logins or OS user names.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// Errors of Authenticate. Both mean 401 for the API.
var (
	ErrNoToken  = errors.New("no API token: send `Authorization: Bearer TOKEN` (create one with `cutover token create NAME --role viewer`)")
	ErrBadToken = errors.New("the API token is not valid (it is malformed, unknown or revoked)")
)

// NewToken is a token just created: the only time its secret is known.
type NewToken struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Token string `json:"token"`
}

// Hash is what the store keeps of a token. A token carries 256 random bits,
// so a plain SHA-256 is as strong as a slow password hash here.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CheckName validates a token name.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("token name %q: use 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", name)
	}
	return nil
}

// CreateToken makes a token called name with role, stores its hash and
// returns the token once. A bad name or role, or a live token of that name,
// changes nothing.
func CreateToken(ctx context.Context, st *store.Store, by Identity, name, role string) (NewToken, error) {
	if err := CheckName(name); err != nil {
		return NewToken{}, err
	}
	r, err := ParseRole(role)
	if err != nil {
		return NewToken{}, fmt.Errorf("--role: %w", err)
	}
	secret := TokenPrefix + rand.Text() + rand.Text()
	if err := st.CreateToken(ctx, store.Token{Name: name, Role: r.String(), Hash: Hash(secret), CreatedBy: by.Name}); err != nil {
		return NewToken{}, err
	}
	return NewToken{Name: name, Role: r.String(), Token: secret}, nil
}

// RevokeToken revokes the live token called name; an unknown name is an
// error wrapping store.ErrNotFound and changes nothing.
func RevokeToken(ctx context.Context, st *store.Store, name string) (store.Token, error) {
	return st.RevokeToken(ctx, name)
}

// Authenticate returns the identity of the bearer of an Authorization header
// value ("Bearer TOKEN"). It fails with ErrNoToken or ErrBadToken; other
// errors are the store's.
func Authenticate(ctx context.Context, st *store.Store, header, remote string) (Identity, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if header == "" {
		return Identity{}, ErrNoToken
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Identity{}, fmt.Errorf("%w: the Authorization header must be `Bearer TOKEN`", ErrNoToken)
	}
	token = strings.TrimSpace(token)
	if !tokenRE.MatchString(token) {
		return Identity{}, ErrBadToken
	}
	t, err := st.TokenByHash(ctx, Hash(token))
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, ErrBadToken
	} else if err != nil {
		return Identity{}, err
	}
	r, err := ParseRole(t.Role)
	if err != nil {
		return Identity{}, fmt.Errorf("token %q has a stored role the server does not know: %w", t.Name, err)
	}
	return Identity{Name: t.Name, Role: r, Via: ViaAPI, Remote: remote}, nil
}

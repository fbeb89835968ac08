package auth

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutoverdev/cutover/internal/store"
)

func TestRolesAreOrdered(t *testing.T) {
	for i, n := range RoleNames() {
		r, err := ParseRole(n)
		if err != nil || r.String() != n || int(r) != i+1 {
			t.Fatalf("ParseRole(%q) = %v, %v", n, r, err)
		}
	}
	if !RoleAdmin.Allows(RoleApprover) || RoleDeployer.Allows(RoleApprover) || RoleAdmin.Allows(RoleNone) {
		t.Fatal("role order is wrong")
	}
	if _, err := ParseRole("root"); err == nil || !strings.Contains(err.Error(), "viewer, deployer, approver, admin") {
		t.Fatalf("ParseRole(root): %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "cutover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tok, err := CreateToken(ctx, st, Identity{Name: "root"}, "alice", "approver")
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.Token) != len(TokenPrefix)+52 || !tokenRE.MatchString(tok.Token) {
		t.Fatalf("token %q is not prefix + 52 base32 characters", tok.Token)
	}
	if other, _ := CreateToken(ctx, st, Identity{Name: "root"}, "bob", "viewer"); other.Token == tok.Token {
		t.Fatal("two tokens are the same")
	}
	who, err := Authenticate(ctx, st, "Bearer "+tok.Token, "127.0.0.1:9")
	if err != nil || who.Name != "alice" || who.Role != RoleApprover || who.Via != ViaAPI || who.Remote != "127.0.0.1:9" {
		t.Fatalf("Authenticate = %+v, %v", who, err)
	}
	for header, want := range map[string]error{
		"":                                     ErrNoToken,
		"Basic " + tok.Token:                   ErrNoToken,
		tok.Token:                              ErrNoToken,
		"Bearer " + tok.Token + "A":            ErrBadToken,
		"Bearer " + strings.ToLower(tok.Token): ErrBadToken,
		"Bearer " + TokenPrefix + strings.Repeat("A", 52): ErrBadToken,
	} {
		if _, err := Authenticate(ctx, st, header, ""); !errors.Is(err, want) {
			t.Errorf("Authenticate(%q): %v, want %v", header, err, want)
		}
	}
	if _, err := RevokeToken(ctx, st, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := Authenticate(ctx, st, "Bearer "+tok.Token, ""); !errors.Is(err, ErrBadToken) {
		t.Fatalf("a revoked token: %v", err)
	}
}

func TestMaskHidesCredentials(t *testing.T) {
	tok := TokenPrefix + strings.Repeat("AB23", 13)
	in := "failed with " + tok + ", header Bearer abc.def, Basic dXNlcjpwYXNz and https://user:hunter2@example.com/x"
	out := Mask(in)
	for _, secret := range []string{tok, "abc.def", "dXNlcjpwYXNz", "hunter2"} {
		if strings.Contains(out, secret) {
			t.Fatalf("Mask left %q in %q", secret, out)
		}
	}
	if !strings.Contains(out, "example.com/x") || !strings.Contains(out, "failed with") {
		t.Fatalf("Mask removed more than the credentials: %q", out)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	if got, _ := ParseSince("90m", now); !got.Equal(now.Add(-90 * time.Minute)) {
		t.Fatalf("90m: %v", got)
	}
	if got, _ := ParseSince("2026-12-01T10:00:00Z", now); !got.Equal(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("RFC 3339: %v", got)
	}
	if got, _ := ParseSince("", now); !got.IsZero() {
		t.Fatalf("empty: %v", got)
	}
	for _, bad := range []string{"-1h", "yesterday", "2026-13-01", "\v", " ", " 24h", "+1h", "-0s"} {
		if _, err := ParseSince(bad, now); err == nil {
			t.Fatalf("ParseSince(%q) accepted", bad)
		}
	}
}

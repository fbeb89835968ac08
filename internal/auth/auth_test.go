package auth

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
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
	in := "failed with " + tok + ", header Bearer abc.def, Basic dXNlcjpwYXNz and https://user:hunter2@example.com/x, https://bot:p@ss@w0rd@example.com/y, https://ghp_tokenOnly1@github.com/o/r"
	out := Mask(in)
	for _, secret := range []string{tok, "abc.def", "dXNlcjpwYXNz", "hunter2", "ss@w0rd", "w0rd", "ghp_tokenOnly1"} {
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
	for _, bad := range []string{"-1h", "yesterday", "2026-13-01", "\v", " ", " 24h", "+1h", "-0s",
		// what Go's parsers take and the API's document refuses
		"1.5h", "500ms", "1us", ".5h", "5.h", "0000000h", "1m1h", "2026-04-31", "2026-02-29", "2026-02-30",
		"2026-12-01T10:00:00", "2026-12-01t10:00:00z", "2026-12-01T24:00", "2026-12-01T10:00:00+24:00", "2026-12-01 10:00"} {
		if _, err := ParseSince(bad, now); err == nil {
			t.Fatalf("ParseSince(%q) accepted", bad)
		}
	}
	for in, want := range map[string]time.Time{
		"0":                              now,
		"1h30m":                          now.Add(-90 * time.Minute),
		"999999h999999m999999s":          now.Add(-999999*time.Hour - 999999*time.Minute - 999999*time.Second),
		"2026-01-31":                     time.Date(2026, 1, 31, 0, 0, 0, 0, time.Local),
		"2026-12-01T15:04":               time.Date(2026, 12, 1, 15, 4, 0, 0, time.Local),
		"2026-12-01T10:00:00.5+05:30":    time.Date(2026, 12, 1, 4, 30, 0, 5e8, time.UTC),
		"0000-01-01T23:59:59.999999999Z": time.Date(0, 1, 1, 23, 59, 59, 999999999, time.UTC),
		"2026-12-01T00:00:00-23:59":      time.Date(2026, 12, 1, 23, 59, 0, 0, time.UTC),
	} {
		if got, err := ParseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

// TestSincePatternTakesExactlyTheRealDays: every day of a common and a leap
// year is taken but February 29, and no day that does not exist; every hour
// and minute of a day and of a zone, and no other.
func TestSincePatternTakesExactlyTheRealDays(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, year := range []int{2025, 2028} {
		for m := 0; m <= 13; m++ {
			for d := 0; d <= 32; d++ {
				s := fmt.Sprintf("%04d-%02d-%02d", year, m, d)
				real := m >= 1 && m <= 12 && d >= 1 && d <= time.Date(year, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
				want := real && !(m == 2 && d == 29)
				got, err := ParseSince(s, now)
				if (err == nil) != want {
					t.Errorf("ParseSince(%q): err %v, want taken %v", s, err, want)
				}
				if err == nil && (got.Year() != year || int(got.Month()) != m || got.Day() != d) {
					t.Errorf("ParseSince(%q) = %v", s, got)
				}
			}
		}
	}
	// hours and minutes of the time and of the zone
	for h := 0; h <= 24; h++ {
		for m := 0; m <= 60; m++ {
			want := h < 24 && m < 60
			for _, s := range []string{fmt.Sprintf("2026-12-01T%02d:%02d", h, m), fmt.Sprintf("2026-12-01T%02d:%02d:%02d.5Z", h, m, m),
				fmt.Sprintf("2026-12-01T10:00:00+%02d:%02d", h, m), fmt.Sprintf("2026-12-01T10:00:00-%02d:%02d", h, m)} {
				if _, err := ParseSince(s, now); (err == nil) != want {
					t.Errorf("ParseSince(%q): err %v, want taken %v", s, err, want)
				}
			}
		}
	}
}

// FuzzParseSince holds ParseSince to SincePattern, the API document's
// pattern: what the pattern takes parses, nothing else does.
func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"", "0", "24h", "1h30m", "90m5s", "2026-12-01", "2026-12-01T15:04",
		"2026-12-01T15:04:05Z", "2026-12-01T15:04:05.123456789+05:30", "1.5h", "\v", "2026-02-29", "-1h"} {
		f.Add(s)
	}
	re := regexp.MustCompile(SincePattern)
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		_, err := ParseSince(s, now)
		if matched := re.MatchString(s); matched != (err == nil) {
			t.Fatalf("ParseSince(%q): err %v, the pattern matches: %v", s, err, matched)
		}
	})
}

// TestSinceMistakesAreNamed: a refused since says what is wrong with it,
// not only what would be taken.
func TestSinceMistakesAreNamed(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"2028-02-29":          "February 29 is never taken",
		"2028-02-29T10:00":    "give 2028-02-28T23:59 or 2028-03-01",
		"2026-04-31":          "not a day of the calendar (2026-04-31)",
		"2026-13-01":          "not a day of the calendar",
		"2026-12-01T24:00":    "has a date but not a time",
		"2026-12-01 10:00":    "has a date but not a time",
		"2026-12-01T10:00:00": "has a date but not a time",
		"1.5h":                "whole hours, minutes and seconds",
		"500ms":               "without fractions or ms/us/ns",
		"0000000h":            "up to 6 digits",
		"2d":                  "give hours (48h)",
		"yesterday":           "neither a duration",
		"\v":                  "neither a duration",
	} {
		_, err := ParseSince(in, now)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), strconv.Quote(in)) {
			t.Errorf("ParseSince(%q): %v; want it to say %q", in, err, want)
		}
	}
}

package auth

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cutoverdev/cutover/internal/source"
	"github.com/cutoverdev/cutover/internal/store"
)

// Audited actions.
const (
	ActionTrigger      = "trigger"
	ActionApprove      = "approve"
	ActionReject       = "reject"
	ActionCancel       = "cancel"
	ActionDeploy       = "deploy"
	ActionRollback     = "rollback"
	ActionStop         = "stop"
	ActionContinue     = "continue"
	ActionPromote      = "promote"
	ActionRetry        = "retry"
	ActionTokenCreate  = "token create"
	ActionTokenRevoke  = "token revoke"
	ActionUp           = "up"
	ActionDown         = "down"
	ActionPrune        = "prune"
	ActionProxyStop    = "proxy stop"
	ActionProxyRestart = "proxy restart"
	ActionSecretSet    = "secret set"
	ActionSecretUnset  = "secret unset"
)

// OutcomeOK is the outcome of an action that succeeded; OutcomeStarted
// that of the entry a long action writes before it acts, so that one
// killed half way is on record too (its outcome follows when it ends).
const (
	OutcomeOK      = "ok"
	OutcomeStarted = "started"
)

// maxOutcome bounds the error text kept per entry.
const maxOutcome = 500

// Record appends who did action to target, and how it ended (err nil: ok),
// to the audit log. The outcome is masked (tokens, credentials in URLs,
// bearer values) and shortened. Writing the log must not be skipped, so a
// failure to write it is returned.
func Record(ctx context.Context, st *store.Store, who Identity, action, target string, err error) error {
	outcome := OutcomeOK
	if err != nil {
		outcome = Mask(strings.Join(strings.Fields(err.Error()), " "))
		if len(outcome) > maxOutcome {
			outcome = outcome[:maxOutcome] + "…"
		}
	}
	return RecordOutcome(ctx, st, who, action, target, outcome)
}

// RecordOutcome is Record with the outcome given (such as OutcomeStarted).
func RecordOutcome(ctx context.Context, st *store.Store, who Identity, action, target, outcome string) error {
	role := ""
	if who.Role != RoleNone {
		role = who.Role.String()
	}
	_, werr := st.AppendAudit(context.WithoutCancel(ctx), store.AuditEntry{
		Actor: who.Name, Role: role, Via: who.Via, Remote: who.Remote, Action: action, Target: Printable(Mask(target)), Outcome: Printable(outcome),
	})
	return werr
}

// Printable writes the characters of s a terminal would act on (control
// characters, a CR, an ANSI escape) as Go escapes. A target comes from a
// request's path or body: a viewer's refused POST to
// /v1/environments/%0D%1B%5B2K.../deploy put a line of its choosing, and an
// escape erasing its own, on the admin's terminal through `cutover audit`.
func Printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

var (
	tokenLike  = regexp.MustCompile(TokenPrefix + `[A-Za-z0-9]+`)
	bearerLike = regexp.MustCompile(`(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]+`)
)

// Mask hides what looks like a credential: cutover tokens, Authorization
// values, and the user information of URLs (source.Redact's, a password
// holding an '@' included).
func Mask(s string) string {
	s = tokenLike.ReplaceAllString(s, TokenPrefix+"***")
	s = bearerLike.ReplaceAllString(s, "$1 ***")
	return source.Redact(s)
}

// SincePattern is the whole language of --since and GET /v1/audit?since=,
// and the API document's pattern for it (a test holds them equal): empty
// (the beginning); a duration back from now in whole hours, minutes and
// seconds (24h, 90m, 1h30m, 0); a date (midnight, local time); a local time
// to the minute (2026-12-01T15:04); or an RFC 3339 time with seconds and a
// zone. Every string it matches is a real time: days are checked by month
// (February up to the 28th), so an API client that follows the pattern is
// never refused, and one that does not always is. Before, anything Go's
// parsers took passed too ("1.5h", "500ms", "0000000h", the 31st of
// April), which the document refuses: a fuzzer sending one of them would
// have been answered 200 where the schema says 400.
const SincePattern = `^(|0|` + sinceDuration + `|` + sinceDate + `(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))?)?)$`

const (
	sinceDuration = `[0-9]{1,6}h([0-9]{1,6}m)?([0-9]{1,6}s)?|[0-9]{1,6}m([0-9]{1,6}s)?|[0-9]{1,6}s`
	sinceDate     = `[0-9]{4}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)`
)

var sinceRE = regexp.MustCompile(SincePattern)

// ParseSince reads --since (see SincePattern). Empty is the beginning.
// Nothing is trimmed: "\v" read as empty answered GET /v1/audit?since=%0B
// with the whole log where its schema refuses it (found by schemathesis).
func ParseSince(s string, now time.Time) (time.Time, error) {
	if !sinceRE.MatchString(s) {
		return time.Time{}, fmt.Errorf("%q %s", s, sinceMistake(s))
	}
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	// Unreachable while SincePattern admits only real times (FuzzParseSince).
	return time.Time{}, fmt.Errorf("%q is not a time this version can read", s)
}

var sinceDay = regexp.MustCompile(`^([0-9]{4})-([0-9]{2})-([0-9]{2})`)

// sinceMistake says what is wrong with a since the pattern refuses, for
// the mistakes one makes: a day that does not exist, February 29 (which
// the pattern cannot tell a leap year from), a duration Go would read but
// the pattern does not (1.5h, 500ms, 2d).
func sinceMistake(s string) string {
	const usage = "is neither a duration (24h, 90m, 1h30m) nor a time (2026-12-01, 2026-12-01T15:04 or 2026-12-01T15:04:05Z)"
	if m := sinceDay.FindStringSubmatch(s); m != nil {
		if m[2] == "02" && m[3] == "29" {
			return "is refused: February 29 is never taken (the API's pattern cannot tell a leap year); give " + m[1] + "-02-28T23:59 or " + m[1] + "-03-01, or a duration back from now"
		}
		if _, err := time.Parse("2006-01-02", m[0]); err != nil {
			return "is not a day of the calendar (" + m[0] + "); give a real date, like 2026-12-01"
		}
		if len(s) > len(m[0]) {
			return "has a date but not a time this can read after it: give 2026-12-01T15:04 (local time) or 2026-12-01T15:04:05Z (with seconds and a zone)"
		}
	}
	if _, err := time.ParseDuration(s); err == nil {
		return "is refused: a duration is whole hours, minutes and seconds of up to 6 digits each, in that order (24h, 90m, 1h30m, 45s), without fractions or ms/us/ns"
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 && n <= 41666 {
			return fmt.Sprintf("is refused: days are not a unit here; give hours (%dh) or a date", n*24)
		}
	}
	return usage
}

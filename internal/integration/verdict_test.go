package integration

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

func TestVerdict(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Access-Control-Allow-Origin": {"http://localhost:3000"}}}
	for _, tc := range []struct {
		check  Check
		status int
		ok     bool
		detail string
	}{
		{Check{ExpectStatus: 200}, 200, true, "status 200"},
		{Check{ExpectStatus: 200}, 503, false, "status 503, want 200 (body: <html> hi)"},
		{Check{ExpectStatus: 200, ExpectBody: "bye"}, 200, false, `body does not contain "bye"`},
		{Check{ExpectStatus: 200, ExpectHeaders: map[string]string{"access-control-allow-origin": "http://localhost:3000"}}, 200, true, "status 200"},
		{Check{ExpectStatus: 200, ExpectHeaders: map[string]string{"Access-Control-Allow-Origin": "*"}}, 200, false, `is "http://localhost:3000", want "*"`},
	} {
		resp.StatusCode = tc.status
		detail, ok := verdict(tc.check, resp, []byte("<html>\n  hi"))
		if ok != tc.ok || !strings.Contains(detail, tc.detail) {
			t.Errorf("verdict(%+v, %d) = %q, %v; want %v and %q", tc.check, tc.status, detail, ok, tc.ok, tc.detail)
		}
	}
}

func TestHealthAndEnv(t *testing.T) {
	d := types.Duration(5 * time.Second)
	retries := uint64(3)
	h := health(&types.HealthCheckConfig{Test: []string{"CMD", "/backend", "-healthcheck"}, Interval: &d, Retries: &retries})
	if h.Interval != 5*time.Second || h.Retries != 3 || h.Timeout != 0 || h.Test[1] != "/backend" {
		t.Errorf("health = %+v", h)
	}
	if h := health(&types.HealthCheckConfig{Disable: true}); !slices.Equal(h.Test, []string{"NONE"}) {
		t.Errorf("disabled health = %+v, want NONE", h)
	}
	if health(nil) != nil {
		t.Error("no healthcheck must keep the image's own (nil)")
	}
	v := "1"
	if got := env(types.MappingWithEquals{"B": &v, "A": &v, "UNSET": nil}); !slices.Equal(got, []string{"A=1", "B=1"}) {
		t.Errorf("env = %v", got)
	}
}

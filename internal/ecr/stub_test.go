package ecr

import (
	"context"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go/middleware"
)

// stub answers SDK calls at the start of the middleware stack with canned
// outputs, so the real client (and this package's polling) runs without a network.
type stub struct {
	mu     sync.Mutex
	calls  []string
	answer func(op string, n int, in any) (any, error) // n counts calls of op
}

func (s *stub) client() *ecr.Client {
	mw := func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("stub", func(ctx context.Context, in middleware.InitializeInput, _ middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			op := middleware.GetOperationName(ctx)
			s.mu.Lock()
			n := 0
			for _, c := range s.calls {
				if c == op {
					n++
				}
			}
			s.calls = append(s.calls, op)
			s.mu.Unlock()
			out, err := s.answer(op, n, in.Parameters)
			return middleware.InitializeOutput{Result: out}, middleware.Metadata{}, err
		}), middleware.Before)
	}
	return ecr.New(ecr.Options{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, APIOptions: []func(*middleware.Stack) error{mw}})
}

func stubClient(t *testing.T, s *stub) *Client {
	t.Helper()
	c, err := New(s.client(), Options{PollInterval: time.Millisecond, MaxPollDelay: 2 * time.Millisecond, ScanTimeout: 30 * time.Second, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// scans returns DescribeImageScanFindings outputs in order, the last repeating.
func scans(outs ...*ecr.DescribeImageScanFindingsOutput) func(string, int, any) (any, error) {
	return func(op string, n int, _ any) (any, error) {
		if n == 0 && outs[0] == nil {
			return nil, &types.ScanNotFoundException{Message: aws.String("not yet")}
		}
		return outs[min(n, len(outs)-1)], nil
	}
}

func scan(status types.ScanStatus, counts map[string]int32) *ecr.DescribeImageScanFindingsOutput {
	return &ecr.DescribeImageScanFindingsOutput{
		ImageScanStatus:   &types.ImageScanStatus{Status: status, Description: aws.String("canned")},
		ImageScanFindings: &types.ImageScanFindings{FindingSeverityCounts: counts},
	}
}

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestWaitScan(t *testing.T) {
	crit, _ := ParseSeverity("CRITICAL")
	high, _ := ParseSeverity("high")
	for _, tc := range []struct {
		name    string
		outs    []*ecr.DescribeImageScanFindingsOutput
		failAt  Severity
		wantErr string // "" = pass
		calls   int
	}{
		{"in progress then clean", []*ecr.DescribeImageScanFindingsOutput{nil, scan(types.ScanStatusInProgress, nil), scan(types.ScanStatusComplete, map[string]int32{"LOW": 3})}, crit, "", 3},
		{"complete below threshold", []*ecr.DescribeImageScanFindingsOutput{scan(types.ScanStatusInProgress, nil), scan(types.ScanStatusComplete, map[string]int32{"HIGH": 5, "MEDIUM": 1})}, crit, "", 2},
		{"complete at threshold", []*ecr.DescribeImageScanFindingsOutput{scan(types.ScanStatusPending, nil), scan(types.ScanStatusComplete, map[string]int32{"CRITICAL": 2, "HIGH": 5})}, crit,
			"image bluemed/backend@" + digest + " has 2 CRITICAL findings (failing at CRITICAL or above); fix them or raise ecr.fail_on_severity", 2},
		{"lower threshold counts both", []*ecr.DescribeImageScanFindingsOutput{scan(types.ScanStatusComplete, map[string]int32{"CRITICAL": 2, "HIGH": 5, "LOW": 9})}, high,
			"has 2 CRITICAL and 5 HIGH findings (failing at HIGH or above)", 1},
		{"failed", []*ecr.DescribeImageScanFindingsOutput{scan(types.ScanStatusInProgress, nil), scan(types.ScanStatusFailed, nil)}, crit, "ended with FAILED", 2},
		{"unsupported", []*ecr.DescribeImageScanFindingsOutput{scan(types.ScanStatusUnsupportedImage, nil)}, crit, "ended with UNSUPPORTED_IMAGE", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &stub{answer: scans(tc.outs...)}
			err := stubClient(t, s).WaitScan(t.Context(), "bluemed/backend", digest, tc.failAt)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("WaitScan: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("WaitScan error %v, want it to contain %q", err, tc.wantErr)
			}
			if len(s.calls) != tc.calls {
				t.Errorf("calls %v, want %d DescribeImageScanFindings", s.calls, tc.calls)
			}
		})
	}
}

func TestWaitScanTimeout(t *testing.T) {
	s := &stub{answer: scans(scan(types.ScanStatusInProgress, nil))}
	c := stubClient(t, s)
	c.o.ScanTimeout = 50 * time.Millisecond
	err := c.WaitScan(t.Context(), "r", digest, 5)
	if err == nil || !strings.Contains(err.Error(), "did not finish in time") {
		t.Fatalf("err = %v", err)
	}
}

// TestEnumCoverage fails when the SDK adds a ScanStatus or FindingSeverity
// this package does not handle.
func TestEnumCoverage(t *testing.T) {
	for _, v := range types.ScanStatus("").Values() {
		if _, ok := scanStatuses[v]; !ok {
			t.Errorf("ScanStatus %s is not handled by WaitScan (add it to scanStatuses)", v)
		}
	}
	for _, v := range types.FindingSeverity("").Values() {
		if _, ok := severityRank[v]; !ok {
			t.Errorf("FindingSeverity %s is not ranked (add it to severityRank)", v)
		}
	}
}

func TestParseSeverity(t *testing.T) {
	if _, err := ParseSeverity("SEVERE"); err == nil || !strings.Contains(err.Error(), "ecr.fail_on_severity") {
		t.Errorf("err = %v", err)
	}
	if _, err := New(nil, Options{FailOnSeverity: "undefined"}); err == nil {
		t.Error("New accepted UNDEFINED as a threshold")
	}
}

func TestLoginStub(t *testing.T) {
	s := &stub{answer: func(op string, _ int, _ any) (any, error) {
		return &ecr.GetAuthorizationTokenOutput{AuthorizationData: []types.AuthorizationData{{
			AuthorizationToken: aws.String(base64.StdEncoding.EncodeToString([]byte("AWS:secret:with:colons"))),
			ProxyEndpoint:      aws.String("https://123456789012.dkr.ecr.us-east-1.amazonaws.com"),
		}}}, nil
	}}
	reg, auth, err := stubClient(t, s).Login(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := auth.Authorization()
	if reg != "123456789012.dkr.ecr.us-east-1.amazonaws.com" || cfg.Username != "AWS" || cfg.Password != "secret:with:colons" {
		t.Errorf("Login = %q, %+v", reg, *cfg)
	}
}

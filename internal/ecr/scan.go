package ecr

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
)

// Severity is an ECR finding severity ranked so that comparisons work.
type Severity int

// severityRank ranks every FindingSeverity the SDK defines; a test fails
// when the SDK adds one that is missing here.
var severityRank = map[types.FindingSeverity]Severity{
	types.FindingSeverityUndefined:     0,
	types.FindingSeverityInformational: 1,
	types.FindingSeverityLow:           2,
	types.FindingSeverityMedium:        3,
	types.FindingSeverityHigh:          4,
	types.FindingSeverityCritical:      5,
}

// ParseSeverity reads a threshold such as "CRITICAL" or "high".
func ParseSeverity(s string) (Severity, error) {
	r, ok := severityRank[types.FindingSeverity(strings.ToUpper(s))]
	if !ok || r == 0 {
		return 0, fmt.Errorf("ecr.fail_on_severity: %q is not a severity; use one of INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL", s)
	}
	return r, nil
}

func (s Severity) String() string {
	for k, v := range severityRank {
		if v == s {
			return string(k)
		}
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// scanOutcome says what each ScanStatus the SDK defines means for the wait;
// a test fails when the SDK adds one that is missing here.
type scanOutcome int

const (
	scanWait scanOutcome = iota // not done yet: poll again
	scanDone                    // findings are final: apply the gate
	scanFail                    // no usable result: fail the build
)

var scanStatuses = map[types.ScanStatus]scanOutcome{
	types.ScanStatusPending:    scanWait,
	types.ScanStatusInProgress: scanWait,
	types.ScanStatusComplete:   scanDone,
	// ACTIVE is enhanced (Inspector) scanning's steady state with findings.
	types.ScanStatusActive:                 scanDone,
	types.ScanStatusFailed:                 scanFail,
	types.ScanStatusUnsupportedImage:       scanFail,
	types.ScanStatusScanEligibilityExpired: scanFail,
	types.ScanStatusFindingsUnavailable:    scanFail,
	types.ScanStatusLimitExceeded:          scanFail,
	types.ScanStatusImageArchived:          scanFail,
}

// WaitScan polls the image's scan until it finishes (backoff up to
// MaxPollDelay, at most ScanTimeout) and fails when it has findings at
// or above failAt, or when the scan gave no result.
func (c *Client) WaitScan(ctx context.Context, repo, digest string, failAt Severity) error {
	ctx, cancel := context.WithTimeout(ctx, c.o.ScanTimeout)
	defer cancel()
	image := repo + "@" + digest
	delay := c.o.PollInterval
	for {
		out, err := c.api.DescribeImageScanFindings(ctx, &ecr.DescribeImageScanFindingsInput{
			RepositoryName: aws.String(repo), ImageId: &types.ImageIdentifier{ImageDigest: aws.String(digest)},
		})
		var notYet *types.ScanNotFoundException
		switch {
		case errors.As(err, &notYet):
			// Scan on push starts shortly after the push: wait for it.
		case err != nil:
			if ctx.Err() != nil {
				return waitErr(ctx, image)
			}
			return fmt.Errorf("ecr: cannot read scan of %s: %w", image, err)
		default:
			st := out.ImageScanStatus
			if st == nil {
				break
			}
			outcome, known := scanStatuses[st.Status]
			if !known {
				return fmt.Errorf("ecr: scan of %s has status %s, which cutover does not know; check it in the ECR console", image, st.Status)
			}
			switch outcome {
			case scanFail:
				return fmt.Errorf("ecr: scan of %s ended with %s: %s; fix the image or disable the scan gate", image, st.Status, aws.ToString(st.Description))
			case scanDone:
				var counts map[string]int32
				if out.ImageScanFindings != nil {
					counts = out.ImageScanFindings.FindingSeverityCounts
				}
				return gate(image, counts, failAt)
			}
		}
		c.o.Log.Debug("waiting for ECR scan", "image", image, "next", delay)
		select {
		case <-ctx.Done():
			return waitErr(ctx, image)
		case <-time.After(delay):
		}
		delay = min(delay*2, c.o.MaxPollDelay)
	}
}

func waitErr(ctx context.Context, image string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("ecr: scan of %s did not finish in time; look at it in the ECR console and retry", image)
	}
	return ctx.Err()
}

// gate names the counts at or above failAt, most severe first.
func gate(image string, counts map[string]int32, failAt Severity) error {
	type count struct {
		sev Severity
		n   int32
	}
	var bad []count
	for name, n := range counts {
		s := severityRank[types.FindingSeverity(name)] // unknown (e.g. UNTRIAGED) ranks 0
		if n > 0 && s >= failAt && s > 0 {
			bad = append(bad, count{s, n})
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i].sev > bad[j].sev })
	parts := make([]string, len(bad))
	for i, b := range bad {
		parts[i] = fmt.Sprintf("%d %s", b.n, b.sev)
	}
	return fmt.Errorf("image %s has %s findings (failing at %s or above); fix them or raise ecr.fail_on_severity", image, strings.Join(parts, " and "), failAt)
}

package pipeline

import (
	"encoding/xml"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/cutoverdev/cutover/internal/config"
	"github.com/cutoverdev/cutover/internal/short"
)

// Suite is the summary of one JUnit test suite.
type Suite struct {
	Name    string `json:"name"`
	Tests   int    `json:"tests"`
	Passed  int    `json:"passed"`
	Failed  int    `json:"failed"` // failures and errors
	Skipped int    `json:"skipped"`
	// FailedCases names the failed test cases (at most 20), each with the
	// first line of its failure message. Secrets in them are masked when
	// stored, as everywhere.
	FailedCases []string `json:"failed_cases,omitempty"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure"`
	Error     *junitFailure `xml:"error"`
	Skipped   *struct{}     `xml:"skipped"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
}

// failedCase names a failed case: class.name: message (its first line,
// at most 200 bytes).
func (c junitCase) failedCase() string {
	name := c.Name
	if c.ClassName != "" {
		name = c.ClassName + "." + c.Name
	}
	f := c.Failure
	if f == nil {
		f = c.Error
	}
	msg := short.Line(f.Message)
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return name + prefixed(": ", msg)
}

type junitSuite struct {
	Name   string       `xml:"name,attr"`
	Cases  []junitCase  `xml:"testcase"`
	Suites []junitSuite `xml:"testsuite"`
}

// ParseJUnit reads JUnit XML (a <testsuites> or a single <testsuite>) and
// counts passed, failed and skipped cases per suite.
func ParseJUnit(data []byte) ([]Suite, error) {
	var root struct {
		XMLName xml.Name
		junitSuite
	}
	if err := xml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("not JUnit XML: %v", err)
	}
	var out []Suite
	var walk func(s junitSuite)
	walk = func(s junitSuite) {
		if len(s.Cases) > 0 {
			sum := Suite{Name: s.Name}
			for _, c := range s.Cases {
				sum.Tests++
				switch {
				case c.Failure != nil || c.Error != nil:
					sum.Failed++
					if len(sum.FailedCases) < 20 {
						sum.FailedCases = append(sum.FailedCases, c.failedCase())
					}
				case c.Skipped != nil:
					sum.Skipped++
				default:
					sum.Passed++
				}
			}
			out = append(out, sum)
		}
		for _, child := range s.Suites {
			walk(child)
		}
	}
	switch root.XMLName.Local {
	case "testsuites", "testsuite":
		walk(root.junitSuite)
	default:
		return nil, fmt.Errorf("not JUnit XML: root element <%s> (want <testsuites> or <testsuite>)", root.XMLName.Local)
	}
	return out, nil
}

// ReadReports parses every file matching the globs (relative to dir); each
// must resolve inside root (a report that is a symbolic link out of the
// workspace is refused, not read).
func ReadReports(root, dir string, globs []string) ([]Suite, error) {
	var files []string
	for _, g := range globs {
		m, err := filepath.Glob(filepath.Join(dir, g))
		if err != nil {
			return nil, fmt.Errorf("reports: bad pattern %q: %v", g, err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(globs) > 0 && len(files) == 0 {
		return nil, fmt.Errorf("reports: no file matches %v in the workspace (check the test command writes its JUnit XML there)", globs)
	}
	var out []Suite
	for _, f := range files {
		if err := config.Confined(root, f); err != nil {
			return nil, fmt.Errorf("reports: %v", err)
		}
		data, err := readBounded(f, maxReportBytes)
		if err != nil {
			return nil, err
		}
		suites, err := ParseJUnit(data)
		if err != nil {
			rel, _ := filepath.Rel(dir, f)
			return nil, fmt.Errorf("%s: %v", rel, err)
		}
		out = append(out, suites...)
	}
	return out, nil
}

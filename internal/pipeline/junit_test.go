package pipeline

import (
	"testing"
)

func TestParseJUnit(t *testing.T) {
	x := `<?xml version="1.0"?>
<testsuites>
  <testsuite name="api" tests="4">
    <testcase classname="api" name="health"/>
    <testcase classname="api" name="list"><failure message="boom">trace</failure></testcase>
    <testcase classname="api" name="slow"><skipped/></testcase>
    <testcase classname="api" name="crash"><error/></testcase>
  </testsuite>
  <testsuite name="web"><testcase classname="web" name="render"/></testsuite>
</testsuites>`
	suites, err := ParseJUnit([]byte(x))
	if err != nil {
		t.Fatal(err)
	}
	if len(suites) != 2 {
		t.Fatalf("%+v", suites)
	}
	a := suites[0]
	if a.Tests != 4 || a.Passed != 1 || a.Failed != 2 || a.Skipped != 1 || len(a.FailedCases) != 2 || a.FailedCases[0] != "api.list: boom" || a.FailedCases[1] != "api.crash" {
		t.Fatalf("api: %+v", a)
	}
	if suites[1].Passed != 1 {
		t.Fatalf("web: %+v", suites[1])
	}
	single, err := ParseJUnit([]byte(`<testsuite name="one"><testcase name="a"/></testsuite>`))
	if err != nil || len(single) != 1 || single[0].Passed != 1 {
		t.Fatalf("single suite: %+v %v", single, err)
	}
	if _, err := ParseJUnit([]byte(`<html></html>`)); err == nil {
		t.Fatal("want error for non-JUnit")
	}
	if _, err := ParseJUnit([]byte(`not xml`)); err == nil {
		t.Fatal("want error for garbage")
	}
}

func FuzzParseJUnit(f *testing.F) {
	f.Add([]byte(`<testsuites><testsuite name="a"><testcase name="x"><failure/></testcase></testsuite></testsuites>`))
	f.Add([]byte(`<testsuite><testsuite><testcase/></testsuite></testsuite>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		suites, err := ParseJUnit(data)
		if err == nil {
			for _, s := range suites {
				if s.Passed+s.Failed+s.Skipped != s.Tests {
					t.Fatalf("counts do not add up: %+v", s)
				}
			}
		}
	})
}

package short

import "testing"

func TestSHA(t *testing.T) {
	for in, want := range map[string]string{
		"0123456789abcdef0123456789abcdef01234567": "0123456",
		"0123456":  "0123456",
		"abc":      "abc",
		"":         "",
		"01234567": "0123456",
	} {
		if got := SHA(in); got != want {
			t.Errorf("SHA(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestID(t *testing.T) {
	const img = "4f2b9c0d1e3a5b7c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e"
	for in, want := range map[string]string{
		"sha256:" + img:                     "4f2b9c0d1e3a",
		img:                                 "4f2b9c0d1e3a",
		"0f5e8a7c9b2d4e6f8a0b1c2d3e4f5a6b":  "0f5e8a7c9b2d", // an ECS task ID
		"sha256:abc":                        "abc",
		"4f2b9c0d1e3a":                      "4f2b9c0d1e3a",
		"bluemed-production-backend-blue-1": "bluemed-production-backend-blue-1", // a name passes whole
		"":                                  "",
	} {
		if got := ID(in); got != want {
			t.Errorf("ID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLine(t *testing.T) {
	for in, want := range map[string]string{
		"exit status 1": "exit status 1",
		"  \nbuild failed: step 3\n  at main.go\n": "build failed: step 3",
		"one\r\ntwo": "one\r",
		"":           "",
	} {
		if got := Line(in); got != want {
			t.Errorf("Line(%q) = %q, want %q", in, got, want)
		}
	}
}

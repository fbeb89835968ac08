package docker

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// Captured from a container listening on :8080 (IPv4 and IPv6) and :9090,
// with one established connection, which is not a listener.
const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123457 1 0000000000000000 100 0 0 10 0
   2: 020011AC:1F90 010011AC:D3A4 01 00000000:00000000 00:00000000 00000000     0        0 123458 1 0000000000000000 20 4 30 10 -1
`

const procNetTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 223456 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0050 00000000000000000000000001000000:C001 06 00000000:00000000 03:00000F3A 00000000     0        0 0 3 0000000000000000
`

func TestParseListeningPorts(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []int
	}{
		{"tcp", procNetTCP, []int{9090, 8080}},
		{"tcp6", procNetTCP6, []int{8080}},
		{"header only", "  sl  local_address rem_address   st\n", nil},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseListeningPorts(strings.NewReader(tc.in))
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{
		"header\n 0: 0100007F:1F90\n",
		"header\n 0: 0100007F 00000000:0000 0A\n",
		"header\n 0: 0100007F:ZZZZ 00000000:0000 0A\n",
		"header\n 0: 0100007F:10000 00000000:0000 0A\n",
	} {
		if got, err := parseListeningPorts(strings.NewReader(bad)); err == nil {
			t.Errorf("parse(%q) = %v, want an error", bad, got)
		}
	}
}

func TestLabels(t *testing.T) {
	l := Labels{Project: "shop", Environment: "prod", Color: "blue"}
	want := map[string]string{
		"dev.cutover.managed": "true", "dev.cutover.project": "shop",
		"dev.cutover.environment": "prod", "dev.cutover.color": "blue",
	}
	got := l.Map()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Map() = %v, want %v", got, want)
	}
	if back := labelsFromMap(got); back != l {
		t.Errorf("labelsFromMap(Map()) = %+v, want %+v", back, l)
	}
	f := l.filters()
	if terms := f["label"]; len(f) != 1 || len(terms) != 4 || !terms["dev.cutover.managed=true"] || !terms["dev.cutover.color=blue"] {
		t.Errorf("filters() = %v", f)
	}
}

func TestReadBuildStream(t *testing.T) {
	stream := `{"stream":"Step 1/3 : FROM scratch\n"}
{"stream":" ---\u003e \n"}
{"stream":"Step 2/3 : RUN make\n"}
{"stream":" ---\u003e Running in 1b2c\n"}
{"stream":"cc -o app main.c\n"}
{"stream":"main.c:3: error: expected ';'\n"}
{"stream":"make: *** [app] Error 1\n"}
{"stream":"one more line\n"}
{"errorDetail":{"code":2,"message":"The command '/bin/sh -c make' returned a non-zero code: 2"},"error":"The command '/bin/sh -c make' returned a non-zero code: 2"}
`
	var out strings.Builder
	_, err := readBuildStream(strings.NewReader(stream), &out)
	want := "step 2/3 RUN make: The command '/bin/sh -c make' returned a non-zero code: 2" +
		" (last output: main.c:3: error: expected ';' | make: *** [app] Error 1 | one more line)"
	if err == nil || err.Error() != want {
		t.Errorf("error =\n%v\nwant\n%s", err, want)
	}
	if !strings.Contains(out.String(), "Step 2/3 : RUN make\n") {
		t.Errorf("progress output = %q", out.String())
	}

	ok := `{"stream":"Step 1/1 : FROM scratch\n"}
{"aux":{"ID":"sha256:abc"}}
{"stream":"Successfully built abc\n"}
`
	id, err := readBuildStream(strings.NewReader(ok), nil)
	if err != nil || id != "sha256:abc" {
		t.Errorf("readBuildStream = %q, %v; want sha256:abc", id, err)
	}
}

func TestEngineUnreachableError(t *testing.T) {
	err := &EngineUnreachableError{Host: "unix:///var/run/docker.sock", Err: fmt.Errorf("dial: %w", syscall.ECONNREFUSED)}
	want := "cannot reach the Docker engine at unix:///var/run/docker.sock: connection refused (start it: `sudo systemctl start docker`, or run `dockerd` in the background; set DOCKER_HOST if it listens elsewhere)"
	if err.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", err, want)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Error("the cause is not kept")
	}
	denied := &EngineUnreachableError{Host: "unix:///var/run/docker.sock", Err: fmt.Errorf("dial: %w", syscall.EACCES)}
	if !strings.Contains(denied.Error(), "permission denied (run as root, or add your user to the docker group") {
		t.Errorf("permission error = %s", denied)
	}
	// The client keeps only the words of a refused socket, not its errno.
	deniedWords := &EngineUnreachableError{Host: "unix:///var/run/docker.sock",
		Err: errors.New("permission denied while trying to connect to the docker API at unix:///var/run/docker.sock")}
	if got := deniedWords.Error(); got != denied.Error() {
		t.Errorf("permission error as words = %s\nwant %s", got, denied)
	}
}

// A socket that does not exist on a machine without dockerd is a missing
// engine: the fix installs it with a command any machine has (no checkout
// of cutover's scripts); with dockerd there, it is started.
func TestEngineNotInstalledSaysHowToInstallIt(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("Docker Desktop: no dockerd on the host")
	}
	installed := engineInstalled
	t.Cleanup(func() { engineInstalled = installed })
	missing := &EngineUnreachableError{Host: "unix:///var/run/docker.sock", Err: fmt.Errorf("dial: %w", syscall.ENOENT)}
	engineInstalled = func() bool { return false }
	want := "cannot reach the Docker engine at unix:///var/run/docker.sock: no such file or directory (install Docker Engine (Debian, Ubuntu: " +
		"`sudo apt-get install docker.io`; others: https://docs.docker.com/engine/install/), then start it: `sudo systemctl start docker`; " +
		"set DOCKER_HOST if it listens elsewhere)"
	if got := missing.Error(); got != want || !missing.NotInstalled() {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	engineInstalled = func() bool { return true }
	if got := missing.Fix(); missing.NotInstalled() || !strings.HasPrefix(got, "start it: `sudo systemctl start docker`") {
		t.Errorf("with dockerd installed: %s", got)
	}
}

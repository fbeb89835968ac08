package proxy

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// keeperHangTimeout is the test keeper's KeepOptions.HangTimeout.
const keeperHangTimeout = 4 * time.Second

// The process tests re-execute this test binary in one of four roles,
// chosen by the first argument, instead of building separate programs:
//
//	cutover-test-proxyd HOME        run the proxy daemon (what `cutover proxy run` does)
//	cutover-test-proxyd-fewfds HOME the same with a limit of fewFDs descriptors
//	cutover-test-keeper HOME        run the proxy role under Keep (what `cutover proxy keep` does)
//	cutover-test-controller HOME    flip weights of scope "e" forever, until killed
func TestMain(m *testing.M) {
	if len(os.Args) == 3 {
		switch os.Args[1] {
		case "cutover-test-proxyd":
			if err := Run(context.Background(), os.Args[2], RunOptions{Version: "test"}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		case "cutover-test-proxyd-fewfds":
			// The daemon with few descriptors (TestLoopAttackOutOfDescriptors):
			// both limits lowered, so nothing raises the soft one again.
			lim := syscall.Rlimit{Cur: fewFDs, Max: fewFDs}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if err := Run(context.Background(), os.Args[2], RunOptions{Version: "test"}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		case "cutover-test-keeper", "cutover-test-keeper-slow":
			// What `cutover proxy keep` does: run the proxy role as a child and
			// restart it (the slow one waits 3s before a restart).
			o := KeepOptions{MinUptime: 500 * time.Millisecond, StandbyTimeout: 5 * time.Second, HangTimeout: keeperHangTimeout, PingEvery: 200 * time.Millisecond}
			if os.Args[1] == "cutover-test-keeper-slow" {
				o.Backoff = 3 * time.Second
			}
			err := Keep(context.Background(), os.Args[2], os.Args[0], []string{"cutover-test-proxyd", os.Args[2]}, o)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		case "cutover-test-controller":
			controller(os.Args[2])
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

// controller changes weights of the rule of listener e/production between
// e/blue and e/green as fast as the proxy accepts, like a canary controller.
func controller(home string) {
	c := NewClient(home)
	ctx := context.Background()
	for i := 0; ; i++ {
		w := 100 * (i % 2)
		err := c.SetWeights(ctx, WeightChange{Listener: "e/production", Forward: []WeightedTarget{{"e/blue", 100 - w}, {"e/green", w}}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		fmt.Println("flip", strconv.Itoa(i))
		time.Sleep(10 * time.Millisecond)
	}
}

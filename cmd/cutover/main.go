// Command cutover takes a containerised monorepo from commit to production with zero downtime.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cutoverdev/cutover/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

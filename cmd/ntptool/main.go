// Command ntptool is a time-synchronisation toolkit: an offset checker
// (query, check), an NTP server (serve) and, later, a clock-disciplining daemon.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

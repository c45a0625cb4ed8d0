// Command ntptool is a time-synchronisation toolkit: an offset checker
// (query, check), an NTP server (serve), configuration checks and imports
// (config), and the synchronisation engine in a simulator (sim); the
// clock-disciplining daemon (run) comes next.
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

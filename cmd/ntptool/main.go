// Command ntptool is a time-synchronisation toolkit: the daemon that
// disciplines the clock (run) and its questions (status, sources,
// wait-sync), an offset checker (query, check), an NTP server (serve),
// configuration checks and imports (config), DHCP lease tools around clock
// steps (lease, renew), the audit journal (audit), and the synchronisation
// engine in a simulator (sim).
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

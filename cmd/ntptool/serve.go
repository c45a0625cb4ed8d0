package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/ntpserve"
	"github.com/spf13/cobra"
)

// serveFlags are the command-line flags of serve; set flags override the
// [server] section of --config.
type serveFlags struct {
	config        string
	listen        []string
	localStratum  int
	allow         []string
	deny          []string
	denyKoD       bool
	noRateLimit   bool
	workers       int
	txChunk       int
	statsInterval time.Duration
	logLevel      string
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Serve NTP time to clients (RFC 5905 server mode)",
		Long: `Answer NTP client requests (versions 1-4) from this host's clock, until
SIGINT or SIGTERM. The clock is never changed: this command only reads it.

What the server answers with:
  --local-stratum N   leap 0, stratum N, refid 127.127.1.1 whatever the kernel
                      says (like chrony's "local stratum N"). Use it on an
                      isolated LAN whose reference is this host's clock.
  otherwise           the kernel clock's status (read-only adjtimex): while it
                      is unsynchronised (STA_UNSYNC) clients get leap 3 /
                      stratum 16 and will not use us; once another daemon has
                      synchronised it they get stratum 10 and the kernel's
                      maximum error as root dispersion.

Who is answered: everybody unless --allow lists networks; --deny always wins.
Mode 6/7 (ntpq/ntpdc, monlist), packets under 48 bytes, bad versions, other
modes and requests carrying a MAC are dropped and counted. A reply is never
larger than its request. Each client address may send --burst requests at
once and then one per interval ([server.ratelimit] in the config file); over
that, requests are dropped and an occasional KoD RATE is sent.

Port 123 is privileged: run as root or give the binary CAP_NET_BIND_SERVICE
(setcap cap_net_bind_service=+ep ntptool). Any port >= 1024 works without.

Statistics (requests, replies, drops by reason, KoD sent) are logged on exit,
on SIGUSR1 and every --stats-interval.`,
		Example: `  # Loopback test server, stratum 2 from the local clock:
  ntptool serve --listen 127.0.0.1:11123 --local-stratum 2
  ntptool query 127.0.0.1:11123

  # LAN server on port 123 (IPv4 and IPv6), only for two networks:
  sudo ntptool serve --listen :123 --allow 192.168.1.0/24 --allow fd00::/8

  # From the [server] section of a config file, flags override it:
  ntptool serve --config /etc/ntptool.toml --listen [::1]:11123`,
		Args: argsExactly(0, "arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "read the [server] section of this TOML config file")
	fl.StringArrayVar(&f.listen, "listen", nil, `UDP address to listen on, repeatable: "127.0.0.1:11123", "[::1]:123", ":123" (default ":123")`)
	fl.IntVar(&f.localStratum, "local-stratum", 0, "serve this stratum (1-15) from the local clock even when it is not synchronised; 0: none")
	fl.StringArrayVar(&f.allow, "allow", nil, "serve only these client networks (CIDR or address), repeatable; default: everybody")
	fl.StringArrayVar(&f.deny, "deny", nil, "never serve these client networks (CIDR or address), repeatable; wins over --allow")
	fl.BoolVar(&f.denyKoD, "deny-kod", false, "answer denied clients with a KoD DENY (rate-limited) instead of silence")
	fl.BoolVar(&f.noRateLimit, "no-rate-limit", false, "answer every request (benchmarks; never on a public address)")
	fl.IntVar(&f.workers, "workers", 0, "sockets (SO_REUSEPORT) and goroutines per listen address; 0: one per CPU")
	fl.IntVar(&f.txChunk, "tx-chunk", 0, "replies per transmit timestamp and sendmmsg call; 1: stamp each reply just before its send; 0: the default (8)")
	_ = fl.MarkHidden("tx-chunk") // a tuning knob for bench/serve
	fl.DurationVar(&f.statsInterval, "stats-interval", 0, "also log statistics at this interval (e.g. 1m); 0: only on SIGUSR1 and exit")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// serveSettings resolves the config file and the flags into the server's
// configuration and the local stratum.
func serveSettings(cmd *cobra.Command, f serveFlags) (ntpserve.Config, int, error) {
	sc := config.Default().Server
	if f.config != "" {
		c, err := config.Load(f.config)
		if err != nil {
			return ntpserve.Config{}, 0, err
		}
		sc = c.Server
	}
	changed := cmd.Flags().Changed
	if changed("listen") {
		sc.Listen = f.listen
	}
	if changed("local-stratum") {
		sc.LocalStratum = f.localStratum
	}
	if changed("allow") {
		sc.Allow = f.allow
	}
	if changed("deny") {
		sc.Deny = f.deny
	}
	if changed("deny-kod") {
		sc.DenyKoD = f.denyKoD
	}
	if changed("no-rate-limit") {
		sc.RateLimit.Enabled = !f.noRateLimit
	}
	if sc.LocalStratum < 0 || sc.LocalStratum > 15 {
		return ntpserve.Config{}, 0, usageError("--local-stratum %d: must be 1-15, or 0 for none", sc.LocalStratum)
	}
	if len(sc.Listen) == 0 {
		return ntpserve.Config{}, 0, usageError("no listen address: give --listen ADDR:PORT")
	}
	for _, a := range sc.Listen {
		if err := checkListen(a); err != nil {
			return ntpserve.Config{}, 0, err
		}
	}
	if f.workers < 0 {
		return ntpserve.Config{}, 0, usageError("--workers %d: must be 0 (one per CPU) or more", f.workers)
	}
	if f.txChunk < 0 || f.txChunk > 1024 {
		return ntpserve.Config{}, 0, usageError("--tx-chunk %d: must be 0 (default) to 1024", f.txChunk)
	}
	cfg := ntpserve.FromConfig(sc)
	cfg.Workers = f.workers
	cfg.TxChunk = f.txChunk
	return cfg, sc.LocalStratum, nil
}

// checkListen rejects a listen address that is not HOST:PORT with a numeric
// port, before any socket is opened.
func checkListen(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return usageError("--listen %q: want HOST:PORT, [IPv6]:PORT or :PORT with a numeric port", a)
	}
	return nil
}

func runServe(ctx context.Context, cmd *cobra.Command, f serveFlags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	if f.statsInterval < 0 {
		return usageError("--stats-interval %v: must not be negative", f.statsInterval)
	}
	cfg, localStratum, err := serveSettings(cmd, f)
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return &exitError{code: exitFailure, err: err}
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))

	// main owns the wall clock: the server reads it through this function.
	now := time.Now
	src, err := ntpserve.NewSystemSource(ntpserve.SystemConfig{
		LocalStratum: localStratum,
		Precision:    ntpserve.MeasurePrecision(now),
	}, now())
	if err != nil {
		return usageError("%v", err)
	}
	if err := src.Err(); err != nil {
		log.Warn("cannot read the kernel clock state; serving as unsynchronised unless --local-stratum", "err", err)
	}
	srv, err := ntpserve.New(cfg, src, now, log)
	if err != nil {
		return usageError("%v", err)
	}
	if err := srv.Listen(ctx); err != nil {
		if errors.Is(err, syscall.EACCES) {
			err = fmt.Errorf("%w (ports below 1024 need root or CAP_NET_BIND_SERVICE: setcap cap_net_bind_service=+ep %s; or listen on a port >= 1024)", err, os.Args[0])
		}
		return &exitError{code: exitFailure, err: err}
	}
	var addrs []string
	for _, a := range srv.Addrs() {
		addrs = append(addrs, a.String())
	}
	st := src.State()
	workers := cfg.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	log.Info("serving NTP", "listen", strings.Join(addrs, ","), "stratum", st.Stratum, "leap", st.Leap,
		"precision_log2", st.Precision, "rate_limit", !cfg.DisableRateLimit, "sockets_per_address", workers)

	if st.Leap == ntpserve.LeapUnsynch {
		log.Warn("the kernel clock is not synchronised (STA_UNSYNC): clients get leap 3 / stratum 16 and will not use this server; give --local-stratum N to serve this clock anyway")
	}
	statsDone := make(chan struct{})
	go logStatsLoop(ctx, srv, log, f.statsInterval, statsDone)
	err = srv.Serve(ctx)
	<-statsDone
	logStats(log, "final statistics", srv.Stats().Snapshot())
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	return nil
}

// logStatsLoop logs the statistics on SIGUSR1 and every interval (if > 0)
// until ctx is done.
func logStatsLoop(ctx context.Context, srv *ntpserve.Server, log *slog.Logger, interval time.Duration, done chan<- struct{}) {
	defer close(done)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-usr1:
			logStats(log, "statistics", srv.Stats().Snapshot())
		case <-tick:
			logStats(log, "statistics", srv.Stats().Snapshot())
		}
	}
}

func logStats(log *slog.Logger, msg string, s ntpserve.StatsSnapshot) {
	log.Info(msg, "requests", s.Requests, "replies", s.Replies, "kod_rate", s.KoDRate, "kod_deny", s.KoDDeny,
		"dropped", s.Dropped(), "drop_short", s.DropShort, "drop_bad_version", s.DropVersion,
		"drop_mode6", s.DropControl, "drop_mode7", s.DropPrivate, "drop_bad_mode", s.DropMode,
		"drop_malformed", s.DropMalformed, "drop_auth", s.DropAuth, "drop_denied", s.DropDenied,
		"drop_rate", s.DropRate, "send_errors", s.SendErrors)
}

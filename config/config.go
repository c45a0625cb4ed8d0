// Package config holds ntptool's TOML configuration schema, its defaults (in
// one place: Default), its loading and validation (every problem at once,
// each with its key and line) and the import of existing ntpd/NTPsec ntp.conf
// and chrony.conf files.
//
// The file format is TOML v1.0 (https://toml.io/en/v1.0.0). Keys are case
// sensitive and unknown keys are errors, so a typo never silently leaves a
// default in place. Problems name keys as paths: "step.limit",
// "source[1].minpoll" (indexes count from 0), "hooks.pre_step[0]".
package config

import "time"

// Poll interval bounds, log2 seconds, for Source.MinPoll and Source.MaxPoll:
// from 1/64 s (chrony's lower limit, for LAN sources with hardware
// timestamps) to 2^17 s, about 36 h (ntpd's upper limit).
const (
	PollMinLog2 = -6
	PollMaxLog2 = 17
)

// Config is one ntptool configuration file. The zero value is not useful:
// start from Default() (Load does) so unset keys keep their defaults.
//
// A Config made by Load or Parse remembers the file and the line of each key
// so that Validate can point at them; compare Configs with
// cmpopts.IgnoreUnexported(Config{}).
type Config struct {
	// Sources are the upstream servers and pools ([[source]] tables).
	Sources []Source `toml:"source"`
	// DriftFile is where the learned frequency correction (ppm) is kept.
	// Default "/var/lib/ntptool/drift"; "" disables it.
	DriftFile string `toml:"driftfile"`
	// Step is the clock step policy.
	Step Step `toml:"step"`
	// Clock controls how the local clock is adjusted.
	Clock Clock `toml:"clock"`
	// Server is the NTP server section (ntptool serve, or the daemon with
	// Server.Enabled).
	Server Server `toml:"server"`
	// Hooks are the commands run around clock steps.
	Hooks Hooks `toml:"hooks"`
	// Control is the local control socket used by status/sources commands.
	Control Control `toml:"control"`
	// Metrics is the Prometheus metrics endpoint.
	Metrics Metrics `toml:"metrics"`
	// Audit is the journal of every clock change.
	Audit Audit `toml:"audit"`
	// Log configures logging.
	Log Log `toml:"log"`
	// Run configures the daemon process itself.
	Run Run `toml:"run"`

	// origin is where the configuration was read from; nil if built in code.
	origin *origin
}

// origin records where a Config was read from, for error messages.
type origin struct {
	file  string
	lines map[string]int // key path ("source[1].port") → line
}

// Source is one upstream time source: exactly one of Server or Pool is set.
type Source struct {
	// Server is a host name or address of one NTP server.
	Server string `toml:"server"`
	// Pool is a DNS name that resolves to several servers (like ntpd's pool).
	Pool string `toml:"pool"`
	// Port is the server's UDP port. Default 123.
	Port int `toml:"port"`
	// IBurst sends a burst of requests at start for a fast first sync.
	// Default false.
	IBurst bool `toml:"iburst"`
	// MinPoll is the shortest poll interval, log2 seconds. Default 6 (64 s).
	MinPoll int `toml:"minpoll"`
	// MaxPoll is the longest poll interval, log2 seconds. Default 10 (1024 s).
	MaxPoll int `toml:"maxpoll"`
	// Prefer marks a source as preferred among equally good ones.
	Prefer bool `toml:"prefer"`
	// MaxSources is how many addresses a pool contributes. Default 4.
	MaxSources int `toml:"maxsources"`
}

// Step is the step policy: when an offset is removed by stepping the clock
// instead of slewing it (chrony's makestep, ntpd's step/panic thresholds).
type Step struct {
	// Threshold: offsets larger than this may be stepped. Default 1s.
	Threshold Duration `toml:"threshold"`
	// Limit: steps are allowed only during the first Limit clock updates;
	// -1 allows them at any time. Default 3.
	Limit int `toml:"limit"`
	// Panic: an offset larger than this is never corrected; the daemon
	// reports it and waits for an operator. The first correction after
	// start is exempt (like ntpd -g), so that a host that boots with a
	// wrong clock is set right. 0 disables. Default 1000s.
	Panic Duration `toml:"panic"`
	// SlewOnly never steps; every offset is slewed. Default false.
	SlewOnly bool `toml:"slew_only"`
}

// Clock configures how the local clock is adjusted.
type Clock struct {
	// Control: false runs without adjusting the clock (like chronyd -x).
	// Default true.
	Control bool `toml:"control"`
	// MaxSlewRatePPM caps the rate at which an offset is slewed, in ppm.
	// Default 83333 (the kernel allows up to 100000 through the tick).
	MaxSlewRatePPM float64 `toml:"max_slew_rate_ppm"`
}

// Server is the NTP server section.
type Server struct {
	// Enabled serves NTP from the daemon (ntptool run). ntptool serve always
	// serves. Default false.
	Enabled bool `toml:"enabled"`
	// Listen lists UDP addresses to listen on ("host:port", "[::1]:123");
	// the host is an IP address, or empty for every address. Default [":123"].
	Listen []string `toml:"listen"`
	// Allow lists client CIDRs that are served; empty allows everybody.
	// A bare address is a single host (/32 or /128); see ParsePrefix.
	Allow []string `toml:"allow"`
	// Deny lists client CIDRs that are never served; it wins over Allow.
	Deny []string `toml:"deny"`
	// DenyKoD answers denied clients with a KoD DENY instead of silence.
	// Default false.
	DenyKoD bool `toml:"deny_kod"`
	// LocalStratum serves this stratum from the local clock when not
	// synchronised (like chrony's "local stratum N"); 0 disables. Default 0.
	LocalStratum int `toml:"local_stratum"`
	// RateLimit limits replies per client address.
	RateLimit RateLimit `toml:"ratelimit"`
}

// RateLimit limits how often one client address is answered.
type RateLimit struct {
	// Enabled turns rate limiting on. Default true.
	Enabled bool `toml:"enabled"`
	// Interval is the mean interval allowed between a client's requests.
	// Default 1s.
	Interval Duration `toml:"interval"`
	// Burst is how many requests a client may send at once. Default 16.
	Burst int `toml:"burst"`
	// KoD sends an occasional KoD RATE to a limited client. Default true.
	KoD bool `toml:"kod"`
	// TableSize is the number of client slots tracked (memory is fixed).
	// Default 65536.
	TableSize int `toml:"table_size"`
}

// Hooks are run around clock steps. Commands are run without a shell:
// a command is its argument vector. Package stephook runs them.
type Hooks struct {
	// PreStep commands run before the daemon steps the clock.
	PreStep [][]string `toml:"pre_step"`
	// PostStep commands run after the daemon steps the clock.
	PostStep [][]string `toml:"post_step"`
	// ExternalStep commands run when something else steps the clock.
	ExternalStep [][]string `toml:"external_step"`
	// DHCPRenew selects the built-in DHCP lease renewers: "auto" (detect
	// dhclient, dhcpcd, udhcpc, systemd-networkd, NetworkManager, each as
	// Renewers allows), one of "dhclient", "dhcpcd", "udhcpc", "networkd",
	// "networkmanager" (that client only), or "off". Default "auto".
	DHCPRenew string `toml:"dhcp_renew"`
	// Timeout bounds each hook and each renewal. Default 10s.
	Timeout Duration `toml:"timeout"`
	// OnFailure is what a failing or timed-out pre-step hook does to the
	// step: "auto" (abort only when the failure leaves an address without
	// a renewal before it expires: a renewal of a wall-clock DHCP client
	// failed and the step is backward by more than its margin; proceed
	// otherwise), "proceed" (step anyway, log it), "abort" (any failure
	// cancels the step; the engine slews the offset out instead) or "hold"
	// (any failure cancels the step and the clock is left alone: the step
	// is proposed again, and the hooks run again, at the next update).
	// "step" and "slew" are accepted for "proceed" and "abort". Default
	// "auto".
	OnFailure string `toml:"on_failure"`
	// PostStepOnFailure is what a failing post-step hook does: "proceed"
	// (run the remaining hooks) or "abort" (skip them; the step is already
	// made). Default "proceed".
	PostStepOnFailure string `toml:"post_step_on_failure"`
	// ExternalStepOnFailure is PostStepOnFailure for external steps.
	// Default "proceed".
	ExternalStepOnFailure string `toml:"external_step_on_failure"`
	// Renewers switches each built-in renewer on or off.
	Renewers Renewers `toml:"renewers"`
}

// Renewers switches the built-in DHCP renewers one by one (all default
// true); hooks.dhcp_renew = "off" switches them all off.
type Renewers struct {
	// DHClient renews ISC dhclient leases (IPv4 and IPv6).
	DHClient bool `toml:"dhclient"`
	// DHCPCD renews dhcpcd leases (dhcpcd -N).
	DHCPCD bool `toml:"dhcpcd"`
	// UDHCPC renews busybox udhcpc leases (SIGUSR1).
	UDHCPC bool `toml:"udhcpc"`
	// Networkd renews systemd-networkd leases (D-Bus RenewLink).
	Networkd bool `toml:"networkd"`
	// NetworkManager renews NetworkManager leases (D-Bus Device.Reapply).
	NetworkManager bool `toml:"networkmanager"`
}

// Control is the local control socket.
type Control struct {
	// Socket is the Unix socket path. Default "/run/ntptool/control.sock";
	// "" disables it.
	Socket string `toml:"socket"`
	// Group owns the socket (mode 0660), so that its members may run the
	// read-only commands: a group name or numeric id. Default "": the
	// daemon's own group.
	Group string `toml:"group"`
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	// Listen is a TCP address such as "127.0.0.1:9123" (the host is an IP
	// address, or empty for every address); "" (the default) disables
	// metrics.
	Listen string `toml:"listen"`
}

// Audit is the journal of clock changes (JSON lines).
type Audit struct {
	// Journal is the file path. Default "/var/log/ntptool/audit.jsonl";
	// "" disables it.
	Journal string `toml:"journal"`
}

// Log configures logging.
type Log struct {
	// Level is "debug", "info", "warn" or "error". Default "info".
	Level string `toml:"level"`
	// Format is "text" or "json". Default "text".
	Format string `toml:"format"`
}

// Run configures the daemon process (ntptool run).
type Run struct {
	// User is the account the daemon switches to after start when started
	// as root, keeping only the capabilities it needs (CAP_SYS_TIME, and
	// CAP_NET_BIND_SERVICE when serving on a port below 1024); its primary
	// group becomes the daemon's group. "" (the default) keeps the user it
	// was started as (under systemd, User= does the switch).
	User string `toml:"user"`
}

// Duration is a time.Duration written in TOML as a string ("1s", "500ms")
// or as a number of seconds (1, 0.5).
type Duration struct {
	time.Duration
}

// Default returns the configuration every file starts from: Load decodes a
// file over it, so a key the file leaves out keeps its value from here. This
// is the one place the defaults are written down; the per-source defaults
// are in DefaultSource.
func Default() Config {
	return Config{
		DriftFile: "/var/lib/ntptool/drift",
		Step: Step{
			Threshold: Duration{time.Second},
			Limit:     3,
			Panic:     Duration{1000 * time.Second},
		},
		Clock: Clock{Control: true, MaxSlewRatePPM: 83333},
		Server: Server{
			Listen: []string{":123"},
			RateLimit: RateLimit{
				Enabled:   true,
				Interval:  Duration{time.Second},
				Burst:     16,
				KoD:       true,
				TableSize: 65536,
			},
		},
		Hooks: Hooks{
			DHCPRenew: "auto", Timeout: Duration{10 * time.Second},
			OnFailure: "auto", PostStepOnFailure: "proceed", ExternalStepOnFailure: "proceed",
			Renewers: Renewers{DHClient: true, DHCPCD: true, UDHCPC: true, Networkd: true, NetworkManager: true},
		},
		Control: Control{Socket: "/run/ntptool/control.sock"},
		Audit:   Audit{Journal: "/var/log/ntptool/audit.jsonl"},
		Log:     Log{Level: "info", Format: "text"},
	}
}

// DefaultSource returns a Source with every default set; only Server or Pool
// is left to fill. Load applies these defaults to each [[source]] table that
// leaves a key out.
func DefaultSource() Source {
	return Source{Port: 123, MinPoll: 6, MaxPoll: 10, MaxSources: 4}
}

// Package report is the contract between the e2e harness on the host and the
// init of the guest VM: the Spec of a scenario (written into the guest's
// initramfs as SpecPath) and the Report the guest sends back on its serial
// console, framed so that it survives kernel messages interleaved on the
// same console.
//
// The frame is
//
//	@@NTPTOOL-E2E-REPORT BEGIN len=N sha256=HEX@@
//	base64 lines (StdEncoding, LineLen characters each)
//	@@NTPTOOL-E2E-REPORT END@@
//
// Extract takes the last complete, intact frame of a console log; lines in a
// frame that are not base64 (a kernel message) are skipped, and the length
// and SHA-256 of the JSON prove nothing was lost or mangled.
package report

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// SpecPath is where the harness puts the scenario's Spec in the initramfs.
const SpecPath = "/e2e/spec.json"

// LineLen is the length of the base64 lines of a frame.
const LineLen = 64

const (
	beginPrefix = "@@NTPTOOL-E2E-REPORT BEGIN "
	endLine     = "@@NTPTOOL-E2E-REPORT END@@"
)

// Errors of Extract.
var (
	// ErrNoReport: the log holds no complete frame (the guest died, hung
	// or was killed before it reported).
	ErrNoReport = errors.New("no complete e2e report frame in the console log")
	// ErrCorrupt: a frame was found but its length or checksum is wrong.
	ErrCorrupt = errors.New("e2e report frame corrupt")
)

// Spec tells the guest init which scenario to run and with what parameters.
// Durations are in seconds; zero values mean the scenario's defaults.
type Spec struct {
	// Scenario is the scenario name (see the harness's list).
	Scenario string `json:"scenario"`
	// ServerPort is the UDP port of the host's ntptool serve on 127.0.0.1,
	// which the guest reaches as 10.0.2.2:ServerPort.
	ServerPort int `json:"server_port"`
	// InjectStepSeconds is added to the guest clock before the daemon
	// under test starts (positive: the guest starts ahead).
	InjectStepSeconds float64 `json:"inject_step_seconds"`
	// InjectFreqPPM is the frequency error set with ADJ_FREQUENCY before
	// the daemon starts (positive: the guest clock runs fast).
	InjectFreqPPM float64 `json:"inject_freq_ppm"`
	// FreeRunSeconds is how long the guest's own rate is measured, with
	// no correction, before anything is injected.
	FreeRunSeconds float64 `json:"free_run_seconds"`
	// RateWindowSeconds splits rate measurements into windows, whose
	// spread is reported.
	RateWindowSeconds float64 `json:"rate_window_seconds"`
	// RunSeconds is how long the daemon under test runs.
	RunSeconds float64 `json:"run_seconds"`
	// RestartSeconds is how long the least-privilege scenario watches
	// the daemon after its restart from the drift file.
	RestartSeconds float64 `json:"restart_seconds,omitempty"`
	// RMSWindowSeconds is the final part of the run over which the offset
	// RMS and the residual rate are measured.
	RMSWindowSeconds float64 `json:"rms_window_seconds"`
	// SampleSeconds is the interval of the independent offset queries.
	SampleSeconds float64 `json:"sample_seconds"`
	// LeaseSeconds is dnsmasq's lease time in DHCP scenarios.
	LeaseSeconds int `json:"lease_seconds"`
	// DHCPClient is "dhclient", "udhcpc" or "dhcpcd".
	DHCPClient string `json:"dhcp_client,omitempty"`
	// WatchSeconds is how long the DHCP scenarios with hooks watch the
	// address after each step (0: 3 lease periods and 10 s).
	WatchSeconds float64 `json:"watch_seconds,omitempty"`
	// StepsBy are the `ntptool step --by` arguments of the DHCP scenario
	// with hooks, in order (empty: DefaultStepsBy).
	StepsBy []string `json:"steps_by,omitempty"`
	// Config is a configuration file for the program under test
	// (ntptool TOML or chrony.conf), with @PORT@ already replaced.
	Config string `json:"config,omitempty"`
}

// Point is one measurement at guest monotonic time T (seconds since the
// guest booted).
type Point struct {
	T float64 `json:"t"`
	V float64 `json:"v"`
}

// Report is what the guest measured. The harness, not the guest, judges it.
type Report struct {
	// Scenario echoes Spec.Scenario.
	Scenario string `json:"scenario"`
	// Error is set when the guest could not finish the scenario.
	Error string `json:"error,omitempty"`
	// Metrics are named measurements, units in the names
	// ("offset_seconds", "rate_ppm").
	Metrics map[string]float64 `json:"metrics"`
	// Facts are named strings (states, versions, file contents).
	Facts map[string]string `json:"facts"`
	// Series are time series, such as the independent offsets.
	Series map[string][]Point `json:"series,omitempty"`
	// Notes is the guest's own log of what it did, in order.
	Notes []string `json:"notes,omitempty"`
}

// New returns an empty report for scenario.
func New(scenario string) *Report {
	return &Report{Scenario: scenario, Metrics: map[string]float64{}, Facts: map[string]string{}, Series: map[string][]Point{}}
}

// Set records a metric. JSON has no NaN or infinity, so such a value is
// recorded as a fact ("NaN", "+Inf") and the metric stays absent.
func (r *Report) Set(name string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.Facts[name] = strconv.FormatFloat(v, 'g', -1, 64)
		return
	}
	r.Metrics[name] = v
}

// Metric returns a metric and whether it is present.
func (r *Report) Metric(name string) (float64, bool) {
	v, ok := r.Metrics[name]
	return v, ok
}

// Encode writes r as one frame.
func Encode(w io.Writer, r *Report) error {
	js, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	sum := sha256.Sum256(js)
	var b bytes.Buffer
	fmt.Fprintf(&b, "\n%slen=%d sha256=%s@@\n", beginPrefix, len(js), hex.EncodeToString(sum[:]))
	enc := base64.StdEncoding.EncodeToString(js)
	for len(enc) > 0 {
		n := min(LineLen, len(enc))
		b.WriteString(enc[:n])
		b.WriteByte('\n')
		enc = enc[n:]
	}
	b.WriteString(endLine + "\n")
	_, err = w.Write(b.Bytes())
	return err
}

// Extract returns the last complete frame's report from a console log.
func Extract(log []byte) (*Report, error) {
	var last *Report
	var lastErr error = ErrNoReport
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var inFrame bool
	var wantLen int
	var wantSum string
	var body strings.Builder
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		// A kernel message may share the BEGIN line's start: look for the
		// marker anywhere on the line.
		if i := strings.Index(line, beginPrefix); i >= 0 {
			n, sum, err := parseBegin(line[i+len(beginPrefix):])
			inFrame, wantLen, wantSum = err == nil, n, sum
			if err != nil {
				lastErr = fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			body.Reset()
			continue
		}
		if !inFrame {
			continue
		}
		if strings.Contains(line, endLine) {
			inFrame = false
			r, err := decodeFrame(body.String(), wantLen, wantSum)
			if err != nil {
				lastErr = err
				continue
			}
			last, lastErr = r, nil
			continue
		}
		if isBase64Line(line) {
			body.WriteString(line)
		}
	}
	if last != nil {
		return last, nil
	}
	return nil, lastErr
}

func parseBegin(s string) (n int, sum string, err error) {
	s, ok := strings.CutSuffix(s, "@@")
	if !ok {
		return 0, "", errors.New("BEGIN line not terminated")
	}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "len":
			n, err = strconv.Atoi(v)
			if err != nil || n < 0 || n > 64<<20 {
				return 0, "", fmt.Errorf("bad len %q", v)
			}
		case "sha256":
			sum = v
		}
	}
	if len(sum) != 2*sha256.Size {
		return 0, "", errors.New("BEGIN line without sha256")
	}
	return n, sum, nil
}

func isBase64Line(s string) bool {
	if s == "" || len(s) > LineLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

func decodeFrame(body string, wantLen int, wantSum string) (*Report, error) {
	js, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrCorrupt, err)
	}
	if len(js) != wantLen {
		return nil, fmt.Errorf("%w: %d bytes, frame says %d", ErrCorrupt, len(js), wantLen)
	}
	sum := sha256.Sum256(js)
	if hex.EncodeToString(sum[:]) != strings.ToLower(wantSum) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	var r Report
	if err := json.Unmarshal(js, &r); err != nil {
		return nil, fmt.Errorf("%w: json: %v", ErrCorrupt, err)
	}
	if r.Metrics == nil {
		r.Metrics = map[string]float64{}
	}
	if r.Facts == nil {
		r.Facts = map[string]string{}
	}
	return &r, nil
}

// DefaultStepsBy are issue 10's steps of scenarios 3 and 4: back 1 h, then
// forward 1 day.
var DefaultStepsBy = []string{"-1h", "+24h"}

// Steps is the Spec's StepsBy, or DefaultStepsBy.
func (sp Spec) Steps() []string {
	if len(sp.StepsBy) == 0 {
		return DefaultStepsBy
	}
	return sp.StepsBy
}

// StepPhase names a step in metric and fact names: "-1h" is "back_1h",
// "+24h" "forward_1d", anything else its characters that are letters or
// digits ("-90s": "step_90s").
func StepPhase(by string) string {
	switch by {
	case "-1h":
		return "back_1h"
	case "+24h":
		return "forward_1d"
	}
	var b strings.Builder
	b.WriteString("step_")
	for _, r := range by {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

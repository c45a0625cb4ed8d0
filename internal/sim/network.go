package sim

import (
	"fmt"
	"math"
	"time"
)

// LinkConfig describes the network path between the client and one server.
// Its zero value is not usable (no delay at all would drop every packet);
// start from DefaultLinkConfig.
type LinkConfig struct {
	// BaseDelay is the fixed part of each one-way delay (100 µs in the
	// reference scenarios). Must not be negative.
	BaseDelay time.Duration
	// Jitter scales the Exp(1) part of each one-way delay (100 µs in the
	// reference scenarios). Must not be negative.
	Jitter time.Duration
	// Asymmetry is a ∈ [0, 0.5): the exponential part is scaled by (1−2a)
	// client→server and by (1+2a) server→client: the mean one-way delays
	// differ by 4a·Jitter, which biases an NTP offset measurement by
	// 2a·Jitter on average. Default 0.
	Asymmetry float64
	// Loss is the probability in [0, 1] that a packet is lost, drawn
	// independently per packet and per direction (an exchange fails with
	// probability 1−(1−Loss)²). Default 0.
	Loss float64
}

// DefaultLinkConfig returns the reference scenarios' link: delays of
// 100 µs + 100 µs·Exp(1) in each direction, symmetric, no loss.
func DefaultLinkConfig() LinkConfig {
	return LinkConfig{BaseDelay: 100 * time.Microsecond, Jitter: 100 * time.Microsecond}
}

// Validate reports whether the link can carry packets, wrapping
// ErrInvalidConfig.
func (c LinkConfig) Validate() error {
	switch {
	case c.BaseDelay < 0:
		return fmt.Errorf("%w: link base delay %v is negative", ErrInvalidConfig, c.BaseDelay)
	case c.Jitter < 0:
		return fmt.Errorf("%w: link jitter %v is negative", ErrInvalidConfig, c.Jitter)
	case c.BaseDelay == 0 && c.Jitter == 0:
		return fmt.Errorf("%w: link with no delay and no jitter drops every packet", ErrInvalidConfig)
	case !(c.Asymmetry >= 0 && c.Asymmetry < 0.5):
		return fmt.Errorf("%w: link asymmetry %g outside [0, 0.5)", ErrInvalidConfig, c.Asymmetry)
	case !(c.Loss >= 0 && c.Loss <= 1):
		return fmt.Errorf("%w: link loss %g outside [0, 1]", ErrInvalidConfig, c.Loss)
	}
	return nil
}

// Direction is the way a packet travels over a link.
type Direction int

// The two directions of a link.
const (
	Up   Direction = iota // client → server
	Down                  // server → client
)

// Link is one client↔server path. Each packet's one-way delay is drawn at
// send time from the direction's own generator:
//
//	d = base_delay + jitter·(1∓2a)·Exp(1)
//
// and, when Loss > 0, the direction's loss generator draws one uniform U;
// U < Loss sets d to −1 s. As SIMULATION.md models it, a delay ≤ 0 drops the
// packet. The delay generator is drawn for every packet, lost or not, so a
// lossy run keeps the delays of its lossless twin packet for packet.
// Delays are independent, so packets may overtake each other.
type Link struct {
	cfg   LinkConfig
	noise LinkNoise
	// Scaled jitter per direction, in seconds.
	jitterS [2]float64
	baseS   float64
}

// NewLink returns a link drawing from noise's generators.
func NewLink(cfg LinkConfig, noise LinkNoise) (*Link, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if noise.Up == nil || noise.Down == nil || (cfg.Loss > 0 && (noise.UpLoss == nil || noise.DownLoss == nil)) {
		return nil, fmt.Errorf("%w: link is missing a noise generator", ErrInvalidConfig)
	}
	j := cfg.Jitter.Seconds()
	return &Link{
		cfg:     cfg,
		noise:   noise,
		baseS:   cfg.BaseDelay.Seconds(),
		jitterS: [2]float64{j * (1 - float64(2*cfg.Asymmetry)), j * (1 + float64(2*cfg.Asymmetry))},
	}, nil
}

// DelayS draws the next packet's one-way delay in dir, in seconds; ≤ 0
// means the packet is lost.
func (l *Link) DelayS(dir Direction) float64 {
	delay, loss := l.noise.Up, l.noise.UpLoss
	if dir == Down {
		delay, loss = l.noise.Down, l.noise.DownLoss
	}
	d := l.baseS + float64(l.jitterS[dir]*delay.Exponential())
	if l.cfg.Loss > 0 && loss.Uniform() < l.cfg.Loss {
		d = -1
	}
	return d
}

// Delay draws the next packet's one-way delay in dir, rounded to the
// nanosecond; ok is false when the packet is lost.
func (l *Link) Delay(dir Direction) (d time.Duration, ok bool) {
	s := l.DelayS(dir)
	if !(s > 0) {
		return 0, false
	}
	return time.Duration(math.Round(s * 1e9)), true
}

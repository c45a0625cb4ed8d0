package ntpclient

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ntptool/ntptool/ntpwire"
)

var t0 = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// reply answers req as a stratum-2 server whose clock reads at (RX = TX),
// then lets forge change it.
func reply(req []byte, at time.Time, forge func([]byte)) []byte {
	r := make([]byte, 48)
	r[0], r[1] = 4<<3|4, 2
	copy(r[24:32], req[40:48])
	ts := uint64(ntpwire.FromTime(at))
	binary.BigEndian.PutUint64(r[32:], ts)
	binary.BigEndian.PutUint64(r[40:], ts)
	if forge != nil {
		forge(r)
	}
	return r
}

func newTestSource() *Source {
	s := NewSource(SourceConfig{Name: "s1", MinPoll: 6, MaxPoll: 10}, rand.New(rand.NewPCG(1, 1)))
	s.Start(0)
	return s
}

// exchange sends a request at mono and answers it 200 µs later.
func exchange(s *Source, mono time.Duration, forge func([]byte)) (Sample, error) {
	real := t0.Add(mono)
	req := s.Request(real, mono, true)
	pkt := reply(req, real.Add(100*time.Microsecond), forge)
	sample, _, err := s.Reply(pkt, real.Add(200*time.Microsecond), mono+200*time.Microsecond)
	return sample, err
}

func TestSourceKoD(t *testing.T) {
	kod := func(code string) func([]byte) {
		return func(r []byte) { r[0] = 3<<6 | 4<<3 | 4; r[1] = 0; copy(r[12:16], code) }
	}
	t.Run("RATE raises a floor under the poll", func(t *testing.T) {
		s := newTestSource()
		if _, err := exchange(s, 0, kod("RATE")); !errors.Is(err, ErrKissOfDeath) {
			t.Fatalf("err %v, want a KoD", err)
		}
		if s.pollLog2 != 7 || s.kodPoll != 7 {
			t.Fatalf("poll 2^%d, floor 2^%d after a KoD RATE at 2^6, want 2^7", s.pollLog2, s.kodPoll)
		}
		s.SetPollLog2(6) // the model would poll at minpoll: the floor holds
		if s.pollLog2 != 7 {
			t.Errorf("SetPollLog2 lowered the poll to 2^%d under the KoD floor", s.pollLog2)
		}
		if s.Voting() {
			t.Error("a source whose last reply was a KoD still votes")
		}
	})
	for _, code := range []string{"DENY", "RSTR"} {
		t.Run(code+" stops the polling", func(t *testing.T) {
			s := newTestSource()
			if _, err := exchange(s, 0, kod(code)); !errors.Is(err, ErrKissOfDeath) {
				t.Fatalf("err %v, want a KoD", err)
			}
			if s.NextPoll() != math.MaxInt64 || s.Voting() {
				t.Errorf("next poll %v, voting %v; want never, false", s.NextPoll(), s.Voting())
			}
		})
	}
}

func TestSourceVoting(t *testing.T) {
	tests := []struct {
		name  string
		run   func(s *Source)
		votes bool
	}{
		{"before its first request", func(*Source) {}, true},
		{"first request in flight", func(s *Source) { s.Request(t0, 0, true) }, true},
		{"answers well", func(s *Source) { exchange(s, 0, nil) }, true},
		{"never answered two requests", func(s *Source) { s.Request(t0, 0, true); s.Request(t0.Add(64*time.Second), 64*time.Second, true) }, false},
		{"answers unsynchronised", func(s *Source) {
			exchange(s, 0, nil)
			exchange(s, 64*time.Second, func(r []byte) { r[0] |= 3 << 6 })
		}, false},
		{"stopped answering", func(s *Source) {
			exchange(s, 0, nil)
			for i := 1; i <= 9; i++ {
				s.Request(t0, time.Duration(i)*64*time.Second, true)
			}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSource()
			tc.run(s)
			if got := s.Voting(); got != tc.votes {
				t.Errorf("Voting() = %v, want %v", got, tc.votes)
			}
		})
	}
}

func TestSourceReplyChecks(t *testing.T) {
	s := newTestSource()
	real := t0
	req := s.Request(real, 0, true)
	if binary.BigEndian.Uint64(req[40:]) == uint64(ntpwire.FromTime(real)) {
		t.Error("the request carries the local time as its transmit timestamp")
	}
	spoofed := reply(req, real, func(r []byte) { r[24] ^= 1 })
	if _, _, err := s.Reply(spoofed, real, 0); !errors.Is(err, ErrNotOurs) {
		t.Errorf("a reply with the wrong origin: %v, want ErrNotOurs", err)
	}
	s.Stepped()
	if _, _, err := s.Reply(reply(req, real, nil), real.Add(time.Millisecond), time.Millisecond); !errors.Is(err, ErrStepped) {
		t.Errorf("a reply across a step: %v, want ErrStepped", err)
	}
	if _, _, err := s.Reply(reply(req, real, nil), real, 0); !errors.Is(err, ErrNotOurs) {
		t.Errorf("a second reply to the same request: %v, want ErrNotOurs", err)
	}
	req = s.Request(real, 64*time.Second, true)
	slow := reply(req, real, nil)
	if _, _, err := s.Reply(slow, real.Add(4*time.Second), 68*time.Second); !errors.Is(err, ErrDelay) {
		t.Errorf("a 4 s round trip: %v, want ErrDelay", err)
	}
}

// Package sim is ntptool's in-process clock-and-network simulator, the
// model of SIMULATION.md, which reproduces clknetsim's: a client host
// whose Linux kernel clock (Kernel, a clock.Kernel) has a frequency error
// with random-walk wander, servers with perfect clocks plus an offset, and
// links with base delay, exponential jitter, asymmetry and loss, all driven
// by a deterministic discrete-event scheduler (Sim) on true time. The
// unchanged engine runs against it for simulated days in milliseconds.
//
// Conventions: true time T is a time.Duration since the start of the run;
// offset = clock − T, positive when the clock is ahead; frequencies in ppm
// follow adjtimex (positive speeds the clock up). The noise is replayed
// exactly as clknetsim generates it from glibc's random() (see NewNoise),
// so runs pair with the reference figures seed for seed.
//
// Nothing here reads or sets the host's clock; nothing sleeps.
//
// The kernel emulation follows Linux's kernel/time/ntp.c and the NTP
// kernel model of RFC 5905 appendix A.5.5 and RFC 1589; packets are NTPv4
// (RFC 5905 section 7.3).
package sim

// Package daemon holds the synchronisation engine: the state of the
// sources, their polling, the selection of truechimers, the discipline of
// the clock and the sync status handed to the kernel. The Engine is a
// state machine driven by one owner (the daemon's event loop on a real
// host, or internal/sim's event queue): it is told when packets arrive and
// when its wake-up time has come, and it sends packets through a Transport.
// It never reads the wall clock or sleeps: time comes from clock.Clock.
package daemon

// Package netio is the daemon's NTP client transport on Linux: one
// connected UDP socket per source address (IPv4 or IPv6), with the
// kernel's timestamps of both directions.
//
//   - Receive: SO_TIMESTAMPNS, the kernel's realtime when the reply
//     reached the socket (RFC 5905's T4 as close to the wire as software
//     gets). Each Reply also carries a realtime and monotonic reading taken
//     together just after the read, so the owner converts the kernel's
//     realtime stamp to its monotonic axis (Reply.RxMonotonic), as the
//     engine wants both.
//   - Transmit: SO_TIMESTAMPING with SOF_TIMESTAMPING_TX_SOFTWARE |
//     SOFTWARE | OPT_TSONLY | OPT_ID: the kernel queues the time the packet
//     reached the driver on the socket's error queue (MSG_ERRQUEUE), which
//     Send reads after the packet is sent, waiting a bounded time
//     (Options.TxWait). Where the kernel gives none, Send returns a
//     user-space reading taken just after the send: never earlier than
//     the packet left, so never a timestamp from the future.
//
// Design: one goroutine runs an epoll loop over every socket (one OS
// thread, whatever the number of sources) and delivers replies on a
// channel the daemon's event loop selects on (Replies); it never blocks:
// a full channel drops the reply and counts it. Send is called by the
// event loop itself and returns the transmit timestamp. The epoll loop
// owns the sockets' reads, the error queue included, because Go's own
// poller cannot wait on an error queue (an EPOLLERR without EPOLLIN fails
// its reads). Close stops the goroutine and closes every socket, so
// nothing leaks.
//
// The origin check and the random transmit cookies are the engine's
// (ntpclient.Request, ParseReply): this package moves bytes and times.
package netio

// Package stephook keeps a host on its network across clock steps.
//
// A DHCP lease is scheduled and expired on two different clocks: the kernel
// removes an address when its valid_lft runs out, counted in monotonic time,
// while ISC dhclient schedules its renewal by the wall clock. A backward
// step of the wall clock therefore postpones dhclient's renewal past the
// kernel's expiry and the host drops off the network (RFC 2131 §4.4.5
// defines T1/T2 and the expiry; RFC 4862 §5.5.4 the valid and preferred
// lifetimes). dhcpcd, busybox udhcpc, systemd-networkd and
// NetworkManager's internal client use monotonic timers and are immune, but
// renewing them too costs milliseconds.
//
// The package has four parts:
//
//   - Runner (New, Run): the hooks of the three events PreStep, PostStep and
//     ExternalStep: the built-in DHCP renewers, auto-detected per interface
//     (dhclient, dhcpcd, udhcpc, systemd-networkd, NetworkManager), then the
//     exec hooks of the configuration, with a timeout and a failure policy
//     per event that decides whether the step proceeds.
//   - Leases: the lease doctor. For each dynamic address: its lifetimes,
//     the client and lease file, and the largest backward and forward step
//     that would leave it without a renewal before it expires.
//   - Watcher: detection of steps made by others, with a timerfd armed with
//     TFD_TIMER_CANCEL_ON_SET, measured as the change of CLOCK_REALTIME −
//     CLOCK_BOOTTIME (which slews and suspend do not change).
//   - ParseLeases: ISC dhclient lease files, IPv4 and IPv6.
//
// Nothing here changes a clock. Every process considered belongs to the
// caller's network namespace, and every address change goes through
// netlink for an address that exists already.
package stephook

package stephook

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ntptool/ntptool/internal/peers"
)

// TestAddrsWhileChanging reads the addresses of a namespace while another
// thread keeps changing them, as a DHCP client's script does while a
// renewer watches: a dump the kernel flags as interrupted is read again,
// never reported as an error, and the steady address is always there.
func TestAddrsWhileChanging(t *testing.T) {
	ns := peers.NewNetns(t)
	nsh, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "d0"}, PeerName: "d1"}); err != nil {
		t.Fatal(err)
	}
	link, err := h.LinkByName("d0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	addr := func(ip string, valid int) *netlink.Addr {
		return &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(ip), Mask: net.CIDRMask(24, 32)}, ValidLft: valid, PreferedLft: valid}
	}
	if err := h.AddrAdd(link, addr("198.18.7.10", 120)); err != nil {
		t.Fatal(err)
	}
	// Enough addresses that a dump spans several netlink messages: a
	// change between two of them interrupts it.
	for i := range 250 {
		ip := net.IPv4(198, 19, byte(i/200), byte(1+i%200))
		if err := h.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)}}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	changes := 0
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = h.AddrReplace(link, addr("198.18.7.10", 100+i%20))
			_ = h.AddrAdd(link, addr("198.18.7.20", 50))
			_ = h.AddrDel(link, addr("198.18.7.20", 50))
			changes++
			time.Sleep(5 * time.Millisecond) // a busy client script, far busier than any
		}
	}()
	var once sync.Once
	halt := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer halt()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(nsh); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	reads := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); reads++ {
		all, err := linuxSystem{}.addrs()
		if err != nil {
			if errors.Is(err, netlink.ErrDumpInterrupted) {
				t.Fatalf("read %d: %v (an interrupted dump must be read again)", reads, err)
			}
			t.Fatal(err)
		}
		found := false
		for _, a := range all {
			found = found || a.Interface == "d0" && a.Prefix.String() == "198.18.7.10/24"
		}
		if !found {
			t.Fatalf("read %d: the steady address is missing: %+v", reads, all)
		}
	}
	halt()
	t.Logf("%d reads during %d changes", reads, changes)
}

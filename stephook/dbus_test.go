package stephook

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// privateBus starts a dbus-daemon of its own (never the system bus) and
// returns its address; it is killed by PID at cleanup.
func privateBus(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Getenv("NTPTOOL_REQUIRE_PEERS") == "1" {
			t.Fatal("dbus-daemon not installed (NTPTOOL_REQUIRE_PEERS=1; apt-get install dbus-daemon)")
		}
		t.Skip("dbus-daemon not installed (apt-get install dbus-daemon)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	sock := filepath.Join(dir, "bus.sock")
	err := os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=`+sock+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile", "--print-address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n') // printed once it listens
	if err != nil {
		t.Fatalf("dbus-daemon: %v", err)
	}
	return strings.TrimSpace(addr)
}

// fakeServices plays systemd-networkd and NetworkManager on a bus.
type fakeServices struct {
	mu    sync.Mutex
	calls []string
}

type fakeNetworkd struct{ f *fakeServices }

func (n fakeNetworkd) RenewLink(ifindex int32) *dbus.Error {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	n.f.calls = append(n.f.calls, "RenewLink "+string(rune('0'+ifindex)))
	return nil
}

type fakeNMManager struct{ f *fakeServices }

func (m fakeNMManager) GetDeviceByIpIface(iface string) (dbus.ObjectPath, *dbus.Error) {
	if iface != "eth0" {
		return "", dbus.NewError("org.freedesktop.NetworkManager.UnknownDevice", []any{"no device"})
	}
	return "/org/freedesktop/NetworkManager/Devices/2", nil
}

type fakeNMDevice struct{ f *fakeServices }

func (d fakeNMDevice) Reapply(conn map[string]map[string]dbus.Variant, version uint64, flags uint32) *dbus.Error {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	if len(conn) != 0 || version != 0 || flags != 0 {
		return dbus.NewError("org.freedesktop.NetworkManager.Device.InvalidArgument", []any{"want the applied connection"})
	}
	d.f.calls = append(d.f.calls, "Reapply")
	return nil
}

// devProps serves the Device properties NetworkManager has.
type devProps struct{}

func (devProps) Get(iface, prop string) (dbus.Variant, *dbus.Error) {
	switch prop {
	case "Dhcp4Config":
		return dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/NetworkManager/DHCP4Config/1")), nil
	case "Dhcp6Config":
		return dbus.MakeVariant(dbus.ObjectPath("/")), nil
	}
	return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{prop})
}

// TestDBusRenewers calls the real D-Bus code of the networkd and
// NetworkManager renewers against fake services on a private bus.
func TestDBusRenewers(t *testing.T) {
	addr := privateBus(t)
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f := &fakeServices{}
	exports := []struct {
		v     any
		path  dbus.ObjectPath
		iface string
	}{
		{fakeNetworkd{f}, networkdPath, networkdManager},
		{fakeNMManager{f}, nmPath, nmManager},
		{fakeNMDevice{f}, "/org/freedesktop/NetworkManager/Devices/2", nmDev},
		{devProps{}, "/org/freedesktop/NetworkManager/Devices/2", "org.freedesktop.DBus.Properties"},
	}
	for _, e := range exports {
		if err := conn.Export(e.v, e.path, e.iface); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{networkdBus, nmBus} {
		if reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("own %s: %v %v", name, reply, err)
		}
	}
	s := linuxSystem{busAddr: addr}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.networkdRenew(ctx, 2); err != nil {
		t.Errorf("networkdRenew: %v", err)
	}
	dev, err := s.nmDevice(ctx, "eth0")
	if err != nil || dev != (nmDevice{Path: "/org/freedesktop/NetworkManager/Devices/2", DHCP4: true}) {
		t.Errorf("nmDevice: %+v %v", dev, err)
	}
	if _, err := s.nmDevice(ctx, "eth9"); err == nil {
		t.Error("nmDevice(eth9): want an error")
	}
	if err := s.nmReapply(ctx, dev.Path); err != nil {
		t.Errorf("nmReapply: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Join(f.calls, ",") != "RenewLink 2,Reapply" {
		t.Errorf("calls %q", f.calls)
	}
	if err := (linuxSystem{busAddr: "unix:path=" + filepath.Join(t.TempDir(), "none")}).networkdRenew(ctx, 2); err == nil {
		t.Error("no bus: want an error")
	}
}

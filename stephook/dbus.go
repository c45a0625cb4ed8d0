package stephook

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// D-Bus names of systemd-networkd (org.freedesktop.network1(5)) and
// NetworkManager (its D-Bus API reference).
const (
	networkdBus     = "org.freedesktop.network1"
	networkdPath    = "/org/freedesktop/network1"
	networkdManager = "org.freedesktop.network1.Manager"

	nmBus     = "org.freedesktop.NetworkManager"
	nmPath    = "/org/freedesktop/NetworkManager"
	nmManager = "org.freedesktop.NetworkManager"
	nmDev     = "org.freedesktop.NetworkManager.Device"
)

// bus connects to the system bus (or busAddr); the caller closes it.
func (s linuxSystem) bus(ctx context.Context) (*dbus.Conn, error) {
	var conn *dbus.Conn
	var err error
	if s.busAddr != "" {
		conn, err = dbus.Connect(s.busAddr, dbus.WithContext(ctx))
	} else {
		conn, err = dbus.ConnectSystemBus(dbus.WithContext(ctx))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoBus, err)
	}
	return conn, nil
}

// networkdRenew calls Manager.RenewLink(ifindex): networkd sends a
// DHCPREQUEST for the link's lease at once (DHCPv4 only in systemd 252).
func (s linuxSystem) networkdRenew(ctx context.Context, ifindex int) error {
	conn, err := s.bus(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	call := conn.Object(networkdBus, networkdPath).CallWithContext(ctx, networkdManager+".RenewLink", 0, int32(ifindex))
	if call.Err != nil {
		return fmt.Errorf("networkd RenewLink(%d): %w", ifindex, call.Err)
	}
	return nil
}

func (s linuxSystem) nmDevice(ctx context.Context, iface string) (nmDevice, error) {
	conn, err := s.bus(ctx)
	if err != nil {
		return nmDevice{}, err
	}
	defer conn.Close()
	var path dbus.ObjectPath
	if err := conn.Object(nmBus, nmPath).CallWithContext(ctx, nmManager+".GetDeviceByIpIface", 0, iface).Store(&path); err != nil {
		return nmDevice{}, fmt.Errorf("NetworkManager GetDeviceByIpIface(%s): %w", iface, err)
	}
	dev := nmDevice{Path: string(path)}
	obj := conn.Object(nmBus, path)
	for _, p := range []struct {
		name string
		set  *bool
	}{{"Dhcp4Config", &dev.DHCP4}, {"Dhcp6Config", &dev.DHCP6}} {
		v, err := obj.GetProperty(nmDev + "." + p.name)
		if err != nil {
			return dev, fmt.Errorf("NetworkManager %s.%s: %w", path, p.name, err)
		}
		if cfg, ok := v.Value().(dbus.ObjectPath); ok && cfg != "/" && cfg != "" {
			*p.set = true
		}
	}
	return dev, nil
}

// nmReapply calls Device.Reapply({}, 0, 0): reconfigure the device from
// its applied profile, unchanged, without deactivating it. An empty
// settings map means "the applied connection"; version 0 skips the version
// check; flags 0 keeps the defaults.
func (s linuxSystem) nmReapply(ctx context.Context, device string) error {
	conn, err := s.bus(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	empty := map[string]map[string]dbus.Variant{}
	call := conn.Object(nmBus, dbus.ObjectPath(device)).CallWithContext(ctx, nmDev+".Reapply", 0, empty, uint64(0), uint32(0))
	if call.Err != nil {
		return fmt.Errorf("NetworkManager Reapply(%s): %w", device, call.Err)
	}
	return nil
}

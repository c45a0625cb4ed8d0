package guard

import (
	"errors"
	"testing"
	"testing/fstest"
)

func TestCheck(t *testing.T) {
	guestCmdline := "console=ttyS0 quiet ntptool.e2e=1 ntptool.scenario=smoke\n"
	qemuDMI := &fstest.MapFile{Data: []byte("QEMU\n")}
	tests := []struct {
		name  string
		files fstest.MapFS
		pid   int
		ok    bool
	}{
		{"guest init as PID 1", fstest.MapFS{
			"proc/cmdline":                {Data: []byte(guestCmdline)},
			"sys/class/dmi/id/sys_vendor": qemuDMI,
		}, 1, true},
		{"helper under the guest init", fstest.MapFS{
			"proc/cmdline":                {Data: []byte(guestCmdline)},
			"sys/class/dmi/id/sys_vendor": qemuDMI,
			"proc/1/cmdline":              {Data: []byte("/init\x00")},
		}, 42, true},
		{"QEMU known from cpuinfo only", fstest.MapFS{
			"proc/cmdline": {Data: []byte(guestCmdline)},
			"proc/cpuinfo": {Data: []byte("processor\t: 0\nmodel name\t: QEMU TCG CPU version 2.5+\n")},
		}, 1, true},
		{"host: no marker", fstest.MapFS{
			"proc/cmdline":                {Data: []byte("BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro\n")},
			"sys/class/dmi/id/sys_vendor": qemuDMI,
		}, 1, false},
		{"marker as a prefix of another word", fstest.MapFS{
			"proc/cmdline":                {Data: []byte("ntptool.e2e=10 xntptool.e2e=1")},
			"sys/class/dmi/id/sys_vendor": qemuDMI,
		}, 1, false},
		{"not QEMU", fstest.MapFS{
			"proc/cmdline":                {Data: []byte(guestCmdline)},
			"sys/class/dmi/id/sys_vendor": {Data: []byte("Dell Inc.\n")},
			"proc/cpuinfo":                {Data: []byte("model name\t: Intel(R) Xeon(R)\n")},
		}, 1, false},
		{"helper whose PID 1 is another init", fstest.MapFS{
			"proc/cmdline":                {Data: []byte(guestCmdline)},
			"sys/class/dmi/id/sys_vendor": qemuDMI,
			"proc/1/cmdline":              {Data: []byte("/sbin/init\x00splash\x00")},
		}, 42, false},
		{"helper, PID 1 unreadable", fstest.MapFS{
			"proc/cmdline":                {Data: []byte(guestCmdline)},
			"sys/class/dmi/id/sys_vendor": qemuDMI,
		}, 42, false},
		{"no /proc", fstest.MapFS{}, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(FS{Files: tc.files, PID: tc.pid})
			if tc.ok && err != nil {
				t.Fatalf("Check: %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, ErrNotGuest) {
				t.Fatalf("Check: %v, want ErrNotGuest", err)
			}
		})
	}
}

// TestCheckRefusesOnThisHost runs the real check on the machine running the
// tests: it is never the e2e guest, so the guard must refuse.
func TestCheckRefusesOnThisHost(t *testing.T) {
	err := Check(OS{})
	if !errors.Is(err, ErrNotGuest) {
		t.Fatalf("Check(OS{}) = %v on the test host, want ErrNotGuest", err)
	}
	t.Logf("refused as expected: %v", err)
}

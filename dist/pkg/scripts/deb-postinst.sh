#!/bin/sh
# .deb postinst: enable the service and (re)start it through
# deb-systemd-invoke, which asks policy-rc.d first: in a chroot, an image
# build or a container where policy-rc.d forbids starting daemons,
# nothing is started (the same convention as debhelper's scripts).
set -e
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ]; then
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper unmask ntptool.service >/dev/null || true
		# was-enabled is true on a new installation: enable it then.
		if deb-systemd-helper --quiet was-enabled ntptool.service; then
			deb-systemd-helper enable ntptool.service >/dev/null || true
		else
			deb-systemd-helper update-state ntptool.service >/dev/null || true
		fi
		deb-systemd-helper update-state ntptool-wait-sync.service >/dev/null || true
	fi
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then
			action=restart
		else
			action=start
		fi
		if command -v deb-systemd-invoke >/dev/null 2>&1; then
			deb-systemd-invoke "$action" ntptool.service >/dev/null || true
		fi
	fi
fi
exit 0

#!/bin/sh
# .rpm %post: register the units with the presets (Fedora/RHEL policy: a
# package never starts its service on install).
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -eq 1 ] 2>/dev/null; then
		systemctl --no-reload preset ntptool.service ntptool-wait-sync.service >/dev/null 2>&1 || :
	fi
fi
exit 0

#!/bin/sh
# .rpm %postun: after an upgrade, restart the service if it was running.
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ] 2>/dev/null; then
		systemctl try-restart ntptool.service >/dev/null 2>&1 || :
	fi
fi
exit 0

#!/bin/sh
# .rpm %preun: on erase (not upgrade), disable and stop the service.
if [ "$1" -eq 0 ] 2>/dev/null && [ -d /run/systemd/system ]; then
	systemctl --no-reload disable --now ntptool.service ntptool-wait-sync.service >/dev/null 2>&1 || :
fi
exit 0

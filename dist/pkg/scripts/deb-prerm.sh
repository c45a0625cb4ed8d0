#!/bin/sh
# .deb prerm: stop the service on removal (deb-systemd-invoke honours
# policy-rc.d).
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ] && command -v deb-systemd-invoke >/dev/null 2>&1; then
	deb-systemd-invoke stop ntptool.service ntptool-wait-sync.service >/dev/null || true
fi
exit 0

#!/bin/sh
# .deb postrm. Purge forgets the service's enablement state and removes the
# drift file; the audit journal in /var/log/ntptool is kept (audit logs are
# the auditor's, not the package manager's), and so is the ntptool user
# (Debian policy: files may still be owned by it).
set -e
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = "remove" ] && command -v deb-systemd-helper >/dev/null 2>&1; then
	deb-systemd-helper mask ntptool.service >/dev/null || true
fi
if [ "$1" = "purge" ]; then
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper purge ntptool.service ntptool-wait-sync.service >/dev/null || true
		deb-systemd-helper unmask ntptool.service >/dev/null || true
	fi
	rm -rf /var/lib/ntptool
fi
exit 0

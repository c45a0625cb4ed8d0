#!/bin/sh
# .deb preinst: create the ntptool system user and group before the files
# are unpacked. Never starts anything.
set -e
if ! id ntptool >/dev/null 2>&1; then
	getent group ntptool >/dev/null 2>&1 || groupadd --system ntptool
	useradd --system --gid ntptool --home-dir /var/lib/ntptool --no-create-home \
		--shell /usr/sbin/nologin --comment "ntptool time daemon" ntptool
fi
exit 0

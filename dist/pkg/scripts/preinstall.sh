#!/bin/sh
# Create the ntptool system user and group (all packages: .deb preinst,
# .rpm %pre, .apk pre-install). Never starts anything.
set -e
if ! id ntptool >/dev/null 2>&1; then
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/sbin/nologin
	if command -v useradd >/dev/null 2>&1; then
		getent group ntptool >/dev/null 2>&1 || groupadd --system ntptool
		useradd --system --gid ntptool --home-dir /var/lib/ntptool --no-create-home \
			--shell "$nologin" --comment "ntptool time daemon" ntptool
	else
		# BusyBox (Alpine)
		addgroup -S ntptool 2>/dev/null || true
		adduser -S -D -H -h /var/lib/ntptool -s "$nologin" -G ntptool -g "ntptool time daemon" ntptool
	fi
fi
exit 0

#!/usr/bin/env bash
# peers.sh: fetch the real NTP peers used by the interop tests and benchmarks
# (chronyd, NTPsec ntpd, ntpdig) into a private cache WITHOUT installing them.
#
# chrony and ntpsec conflict in apt, and installing either may start a daemon
# that disciplines this machine's clock. So the .debs are downloaded with
# `apt-get download` and unpacked with `dpkg -x`; the binaries run from the
# cache. Their shared libraries are ordinary packages, installed with apt.
#
# Usage: scripts/peers.sh [CACHE_DIR]      (default: .cache/peers in the repo)
# Prints the cache root (CACHE_DIR/root) on its last line. Idempotent.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:-${NTPTOOL_PEERS:-$repo/.cache/peers}}
root=$cache/root
stamp=$cache/.complete

if [ -f "$stamp" ] && [ -x "$root/usr/sbin/chronyd" ] && [ -x "$root/usr/sbin/ntpd" ]; then
	echo "$root"
	exit 0
fi

need_apt_update=1
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ $need_apt_update = 1 ]; then apt-get update -qq; need_apt_update=0; fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Runtime libraries of chronyd / ntpd / ntpdig, and the tools the tests use
# (setpriv from util-linux, ip from iproute2, python3 for ntpdig).
apt_install libcap2 libedit2 libgnutls30 libnettle8 libseccomp2 libbsd0 libssl3 \
	iproute2 util-linux python3 tzdata netbase

mkdir -p "$cache/debs"
rm -rf "$root" "$stamp"
mkdir -p "$root"
(
	cd "$cache/debs"
	if ! ls chrony_*.deb ntpsec_*.deb python3-ntp_*.deb ntpsec-ntpdig_*.deb >/dev/null 2>&1; then
		[ $need_apt_update = 1 ] && apt-get update -qq
		# apt's sandbox user cannot write here; downloading as root is intended.
		apt-get download -qq chrony ntpsec python3-ntp ntpsec-ntpdig 2>&1 | grep -v "unsandboxed" || true
	fi
	for deb in chrony_*.deb ntpsec_*.deb python3-ntp_*.deb ntpsec-ntpdig_*.deb; do
		dpkg -x "$deb" "$root"
	done
)

# ntpdig's Python wrapper looks for libntpc.so beside itself first.
lib=$(find "$root/usr/lib" -name 'libntpc.so.1' | head -1)
cp -L "$lib" "$root/usr/lib/python3/dist-packages/ntp/libntpc.so"

for bin in usr/sbin/chronyd usr/sbin/ntpd usr/bin/ntpdig; do
	[ -x "$root/$bin" ] || { echo "peers.sh: $bin missing after unpack" >&2; exit 1; }
done
touch "$stamp"
echo "$root"

#!/usr/bin/env bash
# demo.sh: the main job on loopback, no internet needed. Starts an ntptool
# NTP server on 127.0.0.1:11123 (local stratum 2, from this machine's clock,
# which it only reads), then queries and checks it like a monitoring system
# would. Nothing here changes the clock.
set -euo pipefail
bin=${1:-bin/ntptool}
addr=127.0.0.1:11123

"$bin" serve --listen "$addr" --local-stratum 2 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

# Wait until it answers (at most ~5 s).
for _ in $(seq 25); do
	"$bin" query --timeout 200ms "$addr" >/dev/null 2>&1 && break
done

echo "== ntptool query $addr"
"$bin" query --samples 4 "$addr"
echo
echo "== ntptool query --json $addr"
"$bin" query --json "$addr"
echo
echo "== ntptool check --warn 100ms --crit 1s $addr   (Nagios plugin)"
"$bin" check --warn 100ms --crit 1s "$addr"
echo
echo "demo done: server stats follow as it shuts down"

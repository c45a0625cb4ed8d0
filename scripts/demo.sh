#!/usr/bin/env bash
# demo.sh: the main job on loopback, no internet and no root needed.
#  1. An ntptool NTP server on 127.0.0.1:11123 (local stratum 2, from this
#     machine's clock, which it only reads), queried and checked like a
#     monitoring system would.
#  2. The daemon, `ntptool run --no-clock-control`, synchronising to it and
#     serving the LAN on 127.0.0.1:11124, then asked `status`, `sources`
#     and `wait-sync` over its control socket, as an operator would.
# Nothing here changes the clock: the daemon runs without clock control,
# and as root without CAP_SYS_TIME in its bounding set, so that even a bug
# could not reach the clock.
set -euo pipefail
bin=${1:-bin/ntptool}
addr=127.0.0.1:11123
dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT

nocap=()
if [ "$(id -u)" = 0 ]; then
	nocap=(setpriv --bounding-set -sys_time --)
fi

"$bin" serve --listen "$addr" --local-stratum 2 2>"$dir/serve.log" &
pids+=($!)

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

cat >"$dir/ntptool.toml" <<EOF
# The demo daemon: one loopback server, fast polling, everything in $dir.
driftfile = "$dir/drift"
[[source]]
server = "127.0.0.1"
port = 11123
iburst = true
minpoll = 2
maxpoll = 4
[control]
socket = "$dir/control.sock"
[server]
enabled = true
listen = ["127.0.0.1:11124"]
[audit]
journal = ""
EOF
echo "== ntptool run --config $dir/ntptool.toml --no-clock-control"
"${nocap[@]}" "$bin" run --config "$dir/ntptool.toml" --no-clock-control 2>"$dir/run.log" &
pids+=($!)
"$bin" wait-sync --socket "$dir/control.sock" --max-offset 10ms --timeout 30s
echo "(wait-sync: synchronised)"
sleep 6 # a few more samples for the figures
echo
echo "== ntptool status"
"$bin" status --socket "$dir/control.sock"
echo
echo "== ntptool sources -v"
"$bin" sources -v --socket "$dir/control.sock"
echo
echo "== ntptool query 127.0.0.1:11124   (the daemon's embedded server: stratum 3)"
"$bin" query 127.0.0.1:11124
echo
echo "== the daemon's log"
cat "$dir/run.log"
echo
echo "demo done"

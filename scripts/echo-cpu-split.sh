#!/usr/bin/env bash
# Where an echo server's CPU goes: user and kernel time per message, and
# (where perf's syscall tracepoints work) system calls per message, for our
# servers and the C epoll loop side by side, alternating, in one run.
#
#   ANCHORS_BUILD=/work/anchors-build scripts/echo-cpu-split.sh [ROUNDS]
#
# Needs the anchors built (their loadgen and C echo server; see
# ../shared/anchors/README.md). Each server runs pinned to CPU 0 with the
# anchors load generator on CPU 1 (50 connections, 1 message of 64 bytes
# in flight each) for 1 s of warm-up and 5 s measured; user and kernel
# time come from /proc/PID/stat (clock ticks, so compare rows of the same
# run, not runs).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${ANCHORS_BUILD:-/work/anchors-build}"
rounds="${1:-2}"
lg="$build/bin/loadgen"
tmp="$(mktemp -d)"
spid=
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/ours" ./cmd/asyncdispatch
hz=$(getconf CLK_TCK)
perf_ok=0
if command -v perf >/dev/null && perf stat -e 'syscalls:sys_enter_sendto' true >/dev/null 2>&1; then
	perf_ok=1
fi

measure() { # name command... ({PORT} is replaced)
	local name=$1; shift
	local port=$((20000 + RANDOM % 10000))
	local cmd=("${@//\{PORT\}/$port}")
	taskset -c 0 "${cmd[@]}" >/dev/null 2>&1 &
	spid=$!
	taskset -c 1 "$lg" -mode wait -addr "127.0.0.1:$port" >/dev/null 2>&1
	taskset -c 1 "$lg" -addr "127.0.0.1:$port" -c 50 -p 1 -s 64 -d 1s -warmup 0s >/dev/null
	read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$spid/stat")
	if [ "$perf_ok" = 1 ]; then
		perf stat -x, -e 'syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_ctl' \
			-p "$spid" -o "$tmp/perf" -- sleep 5 &
	fi
	local r
	r=$(taskset -c 1 "$lg" -addr "127.0.0.1:$port" -c 50 -p 1 -s 64 -d 5s -warmup 0s | grep '^RESULT')
	read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$spid/stat")
	wait %2 2>/dev/null || true
	kill "$spid"; wait "$spid" 2>/dev/null || true; spid=
	local rate msgs sc=""
	rate=$(sed -n 's/.* msgs_per_s=\([^ ]*\).*/\1/p' <<<"$r")
	msgs=$(awk -v r="$rate" 'BEGIN{print r*5}')
	if [ "$perf_ok" = 1 ]; then
		sc=$(awk -F, -v m="$msgs" '$1+0 > 0 {split($3, a, ":"); n=a[2]; sub("sys_enter_", "", n); t += $1; s = s sprintf(" %s %.2f", n, $1/m)} END {printf "%.2f (%s)", t/m, substr(s, 2)}' "$tmp/perf")
	fi
	awk -v n="$name" -v m="$msgs" -v r="$rate" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" -v sc="$sc" \
		'BEGIN {printf "| %s | %d | %.2f | %.2f | %.2f | %s |\n", n, r, u/hz*1e6/m, s/hz*1e6/m, (u+s)/hz*1e6/m, sc}'
}

echo "| server | msgs/s | user µs/msg | kernel µs/msg | total | syscalls/msg |"
echo "|---|---|---|---|---|---|"
for i in $(seq "$rounds"); do
	measure c-epoll "$build/c/echo_epoll" '{PORT}'
	measure ours "$tmp/ours" serve echo --addr '127.0.0.1:{PORT}'
	measure ours-cb "$tmp/ours" serve echo --callbacks --addr '127.0.0.1:{PORT}'
done

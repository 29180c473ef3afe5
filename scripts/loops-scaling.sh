#!/usr/bin/env bash
# How the echo server scales over loops: messages/s and CPU per message
# with 1 server loop and with N, under the same load, and their ratios.
#
#   scripts/loops-scaling.sh N LOAD_THREADS [ROUNDS]
#
# N server loops (serve echo --loops N --pin) run on the first N CPUs the
# script may use, the load generator (bench echo --loops LOAD_THREADS)
# on the next LOAD_THREADS CPUs, both pinned with taskset so they never
# share a CPU. The 1-loop baseline runs on the first CPU with the same
# load generator on the same CPUs. Where there are fewer than
# N + LOAD_THREADS CPUs, the load generator shares the server's CPUs
# (say so in any result), unless SERVER_CPUS and LOAD_CPUS (taskset
# lists, e.g. 0-15 and 16-23) place them by hand.
#
# Each round measures 1 loop then N loops; every row is printed, then the
# medians and the ratios: throughput N/1 (the target on a 16-core machine
# is at least 0.9 × N), and CPU per message N/1 (server and load
# generator together, from /proc/PID/stat over a window of DURATION
# inside the load generator's measured one; target at most 1.05).
#
# Environment: CONNS (default 64 × N), PIPELINE (1), SIZE (64), DURATION
# (5s), WARMUP (1s), BALANCE (reuseport), BIN (a built asyncdispatch;
# default: go build ./cmd/asyncdispatch), SAME_PER_LOOP (set: the 1-loop
# baseline gets CONNS / N connections, the load each of the N loops has,
# so that both batch alike and the CPU per message compares the loops'
# own work; unset: both get CONNS). The last column, the server's socket
# operations per poller wait, shows how much each wait batches: spreading
# the same load over more loops lowers it, and each wait costs a system
# call (and, when the loop sleeps, a wake-up), so the CPU per message
# rises where the loops are not saturated.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
	sed -n '2,/^set /p' "$0" | sed 's/^# \{0,1\}//; /^set /d'
	exit 2
fi
n=$1 m=$2 rounds=${3:-3}
conns=${CONNS:-$((64 * n))} pipeline=${PIPELINE:-1} size=${SIZE:-64}
dur=${DURATION:-5s} warm=${WARMUP:-1s} balance=${BALANCE:-reuseport}
tmp="$(mktemp -d)"
spid= bpid=
cleanup() {
	[ -n "$bpid" ] && kill "$bpid" 2>/dev/null || true
	[ -n "$spid" ] && kill "$spid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
bin=${BIN:-}
if [ -z "$bin" ]; then
	go build -o "$tmp/asyncdispatch" ./cmd/asyncdispatch
	bin="$tmp/asyncdispatch"
fi
hz=$(getconf CLK_TCK)
secs() { awk -v d="$1" 'BEGIN { if (d ~ /ms$/) print d/1000; else print d+0 }'; }
dsec=$(secs "$dur") wsec=$(secs "$warm")

# The CPUs we may use, in order (taskset's list of this shell).
mapfile -t cpus < <(taskset -cp $$ | sed 's/.*: //' | tr ',' '\n' |
	awk -F- '{ if (NF == 2) for (i = $1; i <= $2; i++) print i; else print $1 }')
list() { local IFS=,; echo "$*"; }
shared=
if [ -n "${SERVER_CPUS:-}" ] && [ -n "${LOAD_CPUS:-}" ]; then
	scpus_n=$SERVER_CPUS scpus_1=${SERVER_CPUS%%[,-]*} lcpus=$LOAD_CPUS
elif [ "${#cpus[@]}" -ge $((n + m)) ]; then
	scpus_n=$(list "${cpus[@]:0:n}") scpus_1=${cpus[0]} lcpus=$(list "${cpus[@]:n:m}")
else
	scpus_n=$(list "${cpus[@]:0:n}") scpus_1=${cpus[0]} lcpus=$(list "${cpus[@]}")
	shared=" (only ${#cpus[@]} CPUs: the load generator shares the server's)"
fi
echo "# server: $n loops on CPUs $scpus_n, 1 loop on CPU $scpus_1; load: $m loops on CPUs $lcpus$shared"
echo "# $conns connections, $pipeline × $size bytes in flight each, $warm warm-up, $dur measured, balance $balance"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# measure LOOPS CPUS CONNS: prints "loops msgs/s server-µs/msg
# load-µs/msg total-µs/msg ops/round"
measure() {
	local loops=$1 cpus=$2 conns=$3 out="$tmp/serve.out"
	taskset -c "$cpus" "$bin" serve echo --addr 127.0.0.1:0 --loops "$loops" --pin --balance "$balance" \
		--idle-timeout 0 >"$out" 2>&1 &
	spid=$!
	local addr=
	for _ in $(seq 100); do
		addr=$(awk '/serving echo on/ { print $5 }' "$out")
		[ -n "$addr" ] && break
		sleep 0.1
	done
	[ -n "$addr" ] || { cat "$out" >&2; exit 1; }
	taskset -c "$lcpus" "$bin" bench echo --addr "$addr" --loops "$m" --conns "$conns" --pipeline "$pipeline" \
		--size "$size" --duration "$(awk -v d="$dsec" 'BEGIN { print d + 1 }')s" --warmup "$warm" --quiet >"$tmp/bench.out" 2>&1 &
	bpid=$!
	sleep "$wsec"
	local s0 b0 s1 b1
	s0=$(ticks "$spid") b0=$(ticks "$bpid")
	sleep "$dsec"
	s1=$(ticks "$spid") b1=$(ticks "$bpid")
	wait "$bpid" || { cat "$tmp/bench.out" >&2; exit 1; }
	bpid=
	kill -INT "$spid"; wait "$spid" 2>/dev/null || true; spid=
	grep -q 'errors 0  mismatches 0' "$tmp/bench.out" || { cat "$tmp/bench.out" >&2; exit 1; }
	# The bench measures a second longer than the sampled window, so that
	# it is still running at both samples; the window's messages are its
	# rate times the window.
	# ops/round: the server's socket operations per poller wait, over the
	# whole run (its summary lines): how much each wait batches.
	local opr
	opr=$(awk '/^  loop [0-9]+.*operations? in .* rounds?/ {
			for (i = 1; i <= NF; i++) { v = $i; gsub(",", "", v)
				if ($(i+1) ~ /^operations?$/) o += v; if ($(i+1) ~ /^rounds?$/) r += v } }
		END { printf "%.2f", r ? o / r : 0 }' "$out")
	awk -v loops="$loops" -v s=$((s1 - s0)) -v b=$((b1 - b0)) -v hz="$hz" -v d="$dsec" -v opr="$opr" '
		/^connections / { for (i = 1; i <= NF; i++) if ($(i+1) == "msg/s") { r = $i; gsub(",", "", r) } }
		END { m = r * d; printf "%d %d %.3f %.3f %.3f %s\n", loops, r, s/hz*1e6/m, b/hz*1e6/m, (s+b)/hz*1e6/m, opr }' "$tmp/bench.out"
}

conns1=$conns
if [ -n "${SAME_PER_LOOP:-}" ]; then
	conns1=$((conns / n))
	echo "# SAME_PER_LOOP: the 1-loop baseline gets $conns1 connections, what each of the $n loops gets"
fi
echo "| round | loops | conns | msgs/s | server µs/msg | load µs/msg | total µs/msg | server ops/round |"
echo "|---|---|---|---|---|---|---|---|"
for r in $(seq "$rounds"); do
	for cfg in "1 $scpus_1 $conns1" "$n $scpus_n $conns"; do
		read -r loops cpus c <<<"$cfg"
		measure "$loops" "$cpus" "$c" | tee -a "$tmp/rows" |
			awk -v r="$r" -v c="$c" '{ printf "| %d | %d | %d | %d | %.2f | %.2f | %.2f | %s |\n", r, $1, c, $2, $3, $4, $5, $6 }'
	done
done
awk -v n="$n" '
	function median(a, k,   i, j, t) {
		for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
	}
	$1 == 1 { k1++; r1[k1] = $2; s1[k1] = $3; t1[k1] = $5 }
	$1 == n && n != 1 { kn++; rn[kn] = $2; sn[kn] = $3; tn[kn] = $5 }
	END {
		R1 = median(r1, k1); S1 = median(s1, k1); T1 = median(t1, k1)
		RN = median(rn, kn); SN = median(sn, kn); TN = median(tn, kn)
		printf "\nmedians: 1 loop %d msg/s, %.2f µs/msg (server %.2f); %d loops %d msg/s, %.2f µs/msg (server %.2f)\n", R1, T1, S1, n, RN, TN, SN
		printf "throughput %d loops / 1 loop: %.2f (%.2f × %d; target >= 0.9 × %d on a machine with enough cores)\n", n, RN / R1, RN / R1 / n, n, n
		printf "CPU per message %d loops / 1 loop: %.3f total, %.3f server only (target <= 1.05)\n", n, TN / T1, SN / S1
	}' "$tmp/rows"

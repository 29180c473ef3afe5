#!/usr/bin/env bash
# Micro costs of the core beside Nim 1.6.10's, in the same run, pinned to
# CPU 0 like the anchors (shared/anchors/micro/nim/micro.nim).
#
#   ANCHORS_BUILD=/work/anchors-build scripts/micro-vs-nim.sh
#
# Needs the anchors built (cd ../shared/anchors && ANCHORS_BUILD=... ./run.sh
# build; that needs `apt-get install -y nim`). Each side runs ROUNDS times,
# alternating, and the best round is reported (this machine is shared and
# noisy: a slower round means interference, not a slower program).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${ANCHORS_BUILD:-/work/anchors-build}"
rounds="${ROUNDS:-3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/ad.test" . >/dev/null
ours() { # bench-regexp n
	taskset -c 0 "$tmp/ad.test" -test.run '^$' -test.bench "$1" -test.benchtime "$2x" 2>/dev/null |
		awk '/^Benchmark/ {print $3}' | head -1
}
nim() { # gc bench field
	taskset -c 0 "$build/nim/micro_$1" "$2" 2>/dev/null | tr ' ' '\n' | awk -F= -v k="$3" '$1==k {print $2}'
}
best() { sort -g | head -1; }
declare -A r
for i in $(seq "$rounds"); do
	for gc in refc orc; do
		r[nim_future_$gc]+="$(nim $gc future ns_per_op) "
		r[nim_chain_$gc]+="$(nim $gc chain ns_per_op) "
		r[nim_callsoon_$gc]+="$(nim $gc callsoon ns_per_op) "
		w=$(nim $gc timers wall_ms); r[nim_timers_$gc]+="$(awk -v w="$w" 'BEGIN{print w*1e6/100000}') "
	done
	r[go_future]+="$(ours '^BenchmarkFutureCreateCallbackComplete$' 1000000) "
	r[go_chain]+="$(ours '^BenchmarkAwaitChainDirect$' 1000000) "
	r[go_chaincall]+="$(ours '^BenchmarkAwaitChainCall$' 1000000) "
	r[go_chainf]+="$(ours '^BenchmarkAwaitChainFutures$' 1000000) "
	r[go_suspend]+="$(ours '^BenchmarkAwaitSuspendResume$' 1000000) "
	r[go_callsoon]+="$(ours '^BenchmarkCallSoon$' 1000000) "
	r[go_timers]+="$(ours '^BenchmarkTimers$' 100000) "
	r[go_alloc]+="$(ours '^BenchmarkFloorAlloc96$' 1000000) "
	r[go_switch]+="$(ours '^BenchmarkFloorCoroSwitch$' 1000000) "
done
b() { echo ${r[$1]} | tr ' ' '\n' | grep -v '^$' | best; }
row() { # name ours nim-refc nim-orc
	local nb; nb=$(printf '%s\n%s\n' "$3" "$4" | best)
	printf '| %s | %s | %s | %s | %.2f |\n' "$1" "$2" "$3" "$4" "$(awk -v a="$2" -v b="$nb" 'BEGIN{print a/b}')"
}
echo "| micro (ns/op, best of $rounds) | ours | Nim refc | Nim orc | ours ÷ best Nim |"
echo "|---|---|---|---|---|"
row "(a) future create + callback + complete" "$(b go_future)" "$(b nim_future_refc)" "$(b nim_future_orc)"
row "(b) await chain, awaited procs called directly" "$(b go_chain)" "$(b nim_chain_refc)" "$(b nim_chain_orc)"
row "(b) await chain through Call (traced)" "$(b go_chaincall)" "$(b nim_chain_refc)" "$(b nim_chain_orc)"
row "(b') await chain, every proc its own Future" "$(b go_chainf)" "$(b nim_chain_refc)" "$(b nim_chain_orc)"
row "(c) 100k sleep(10ms) timers, wall per timer" "$(b go_timers)" "$(b nim_timers_refc)" "$(b nim_timers_orc)"
row "(d) callSoon" "$(b go_callsoon)" "$(b nim_callsoon_refc)" "$(b nim_callsoon_orc)"
echo
echo "await that suspends and resumes (no Nim row): $(b go_suspend) ns/op"
echo "floors (Go itself): one 96-byte heap object with pointers $(b go_alloc) ns; one iter.Pull round trip $(b go_switch) ns"

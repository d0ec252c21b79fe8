#!/usr/bin/env bash
# Memory per held call (issue 12): N calls established through officepbx and held (no RTP), the
# process's RSS and Go heap measured before the calls, once all are up (their INVITE transactions
# still live: RFC 6026 keeps them 32 s), after the transactions are gone (the calls alone), and
# after the calls ended. The Go heap is read after a forced GC from net/http/pprof (--pprof);
# the in-use heap profiles are kept so that `go tool pprof -top -diff_base` shows where the
# bytes of the held calls are.
#
#   bench/held-calls.sh [N=10000] [RATE=500]
#
# Environment: DIALPLAN (Lua file, default bench/dialplan.lua; "none" for default routing),
# RELAY=1 (media relay on: four sockets per call, needs `ulimit -n` above 4 N), OUT (folder for
# the heap profiles and the binary, default /tmp/held-calls).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

n=${1:-10000}
rate=${2:-500}
dialplan=${DIALPLAN:-bench/dialplan.lua}
out=${OUT:-/tmp/held-calls}
settle_s=${SETTLE_S:-40} # longer than the 32 s an INVITE transaction outlives its final response
ramp_s=$(((n + rate - 1) / rate))
hold_ms=$(((ramp_s + settle_s + 25) * 1000))

work=$(mktemp -d)
mkdir -p "$out"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

echo "held-calls: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+changes'), $(nproc) cores"
echo "$n calls at $rate/s, each held $((hold_ms / 1000)) s; dialplan $dialplan; relay ${RELAY:-off}; GOGC ${GOGC:-"unset (Go default 100)"}"
echo "at start: $(load_line)"

go build -o "$out/officepbx" ./examples/officepbx
db="sqlite:$work/pbx.db"
"$out/officepbx" ext add 200 --password pw200 --db "$db" >/dev/null
sip=$(free_port)
http=$(free_port)
uas_port=$(free_port)
flags=(--sip "127.0.0.1:$sip" --db "$db" --trust 127.0.0.0/8 --log-level warn --http "127.0.0.1:$http" --pprof)
[ "$dialplan" != none ] && flags+=(--dialplan "$dialplan")
[ -n "${RELAY:-}" ] && flags+=(--rtp-ports 30000-59999)
"$out/officepbx" serve "${flags[@]}" 2>"$work/pbx.log" &
pbx=$!
bench_track "$pbx"
wait_port "$sip"

sipp_opts=(-i 127.0.0.1 -buff_size 4194304 -nostdin)
sipp -sf bench/sipp/register-uas.xml -s 200 -m 1 "${sipp_opts[@]}" -p "$uas_port" -timeout 10s -timeout_error \
	"127.0.0.1:$sip" >/dev/null 2>&1
sipp -sf bench/sipp/uas.xml "${sipp_opts[@]}" -p "$uas_port" -trace_stat -stf "$work/uas.csv" -fd 1 >/dev/null 2>&1 &
bench_track $!
wait_port "$uas_port"

# snapshot NAME: RSS, and the heap after a forced GC (profile kept as $out/heap-NAME.pb.gz).
declare -A rss heap stack
snapshot() {
	curl -sf -o "$out/heap-$1.pb.gz" "http://127.0.0.1:$http/debug/pprof/heap?gc=1"
	heap[$1]=$(curl -sf "http://127.0.0.1:$http/debug/pprof/heap?debug=1" | awk '/^# HeapAlloc = / {print $4}')
	rss[$1]=$(rss_kb "$pbx")
	curl -sf "http://127.0.0.1:$http/metrics" >"$work/metrics"
	stack[$1]=$(awk '/^go_memstats_stack_inuse_bytes / {print $2 + 0}' "$work/metrics")
	printf '%-12s RSS %7.1f MiB  Go heap in use (after GC) %7.1f MiB  stacks %6.1f MiB  goroutines %6s  (%s)\n' "$1" \
		"$(awk -v k="${rss[$1]}" 'BEGIN {print k / 1024}')" "$(awk -v b="${heap[$1]}" 'BEGIN {print b / 1048576}')" \
		"$(awk -v b="${stack[$1]}" 'BEGIN {print b / 1048576}')" "$(awk '/^go_goroutines / {print $2}' "$work/metrics")" "$(load_line)"
}

sleep 1
snapshot before
sipp -sf bench/sipp/uac.xml -s 200 "${sipp_opts[@]}" -p "$(free_port)" -r "$rate" -m "$n" -l $((n + 100)) \
	-d "$hold_ms" -timeout $((hold_ms / 1000 + 120))s -timeout_error -trace_stat -stf "$work/uac.csv" -fd 1 \
	"127.0.0.1:$sip" >/dev/null 2>&1 &
uac=$!
bench_track "$uac"

# All calls answered: the UAS's current calls reach N (each waits for its BYE).
for _ in $(seq $((ramp_s * 4 + 60))); do
	sleep 0.5
	[ -s "$work/uas.csv" ] || continue
	up=$(csv_col "$work/uas.csv" 'CurrentCall')
	[ "${up:-0}" -ge "$n" ] && break
done
sleep 2
echo "calls up at the UAS: $(csv_col "$work/uas.csv" 'CurrentCall') of $n"
snapshot established
sleep "$settle_s"
snapshot held
wait "$uac" || true
sleep "$settle_s"
snapshot ended

ok=$(csv_col "$work/uac.csv" 'SuccessfulCall(C)')
fail=$(csv_col "$work/uac.csv" 'FailedCall(C)')
echo "sipp UAC: successful $ok, failed $fail, retransmissions $(csv_col "$work/uac.csv" 'Retransmissions(C)')"
per() { awk -v a="$1" -v b="$2" -v n="$n" -v u="$3" 'BEGIN { printf "%.1f KB", (b - a) * u / n / 1000 }'; }
echo
echo "per held call ($n calls):"
echo "  RSS, calls and their transactions (established - before): $(per "${rss[before]}" "${rss[established]}" 1024)"
echo "  RSS, calls alone (held - before):                         $(per "${rss[before]}" "${rss[held]}" 1024)"
echo "  Go heap, calls and transactions:                          $(per "${heap[before]}" "${heap[established]}" 1)"
echo "  Go heap, calls alone:                                     $(per "${heap[before]}" "${heap[held]}" 1)"
echo "  goroutine stacks, calls alone:                            $(per "${stack[before]}" "${stack[held]}" 1)"
echo "  left after the calls ended, RSS / Go heap:                $(per "${rss[before]}" "${rss[ended]}" 1024) / $(per "${heap[before]}" "${heap[ended]}" 1)"
echo "(KB = 1000 bytes)"
echo
echo "where the held calls' heap is (inuse_space, held minus before):"
go tool pprof -top -inuse_space -nodecount 20 -diff_base "$out/heap-before.pb.gz" "$out/officepbx" "$out/heap-held.pb.gz" 2>/dev/null |
	awk '/flat%/ { on = 1; printf "%10s %10s  %s\n", "flat", "cum", "function"; next } on { printf "%10s %10s  %s\n", $1, $4, $6 }'
echo "profiles: $out/heap-{before,established,held,ended}.pb.gz (binary $out/officepbx)"
grep -E "level=(ERROR|WARN)" "$work/pbx.log" | head -3 || true

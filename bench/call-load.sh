#!/usr/bin/env bash
# Call load through the officepbx binary: sipp's UAC calls sipp's UAS (registered as extension
# 200 from a trusted network) N times at RATE calls/s, each call held HOLD ms. Prints sipp's counts
# and the PBX's CPU time, for docs/benchmarks.md.
#
#   bench/call-load.sh [N=2000] [RATE=200] [HOLD=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
rate=${2:-200}
hold=${3:-1000}
work=$(mktemp -d)
trap 'kill $pbx_pid $uas_pid 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/officepbx" ./examples/officepbx
db="sqlite:$work/pbx.db"
"$work/officepbx" ext add 200 --password pw200 --db "$db" > /dev/null
port=$((20000 + RANDOM % 20000))
"$work/officepbx" serve --sip "127.0.0.1:$port" --db "$db" --trust 127.0.0.0/8 --log-level warn 2> "$work/pbx.log" &
pbx_pid=$!
sleep 1
uas_port=$((port + 2))
sipp -sf test/sipp/register-trusted.xml -s 200 -m 1 -i 127.0.0.1 -p "$uas_port" "127.0.0.1:$port" > /dev/null 2>&1
sipp -sn uas -i 127.0.0.1 -p "$uas_port" -m "$n" "127.0.0.1:$port" > /dev/null 2>&1 &
uas_pid=$!
sleep 0.5
start=$(date +%s.%N)
sipp -sn uac -s 200 -i 127.0.0.1 -p $((port + 4)) -r "$rate" -m "$n" -l $((rate * 5)) -d "$hold" \
  -timeout 300s -trace_stat -stf "$work/uac.csv" "127.0.0.1:$port" > /dev/null 2>&1 || true
end=$(date +%s.%N)
last=$(tail -n 1 "$work/uac.csv"); header=$(head -n 1 "$work/uac.csv")
col() { echo "$header" | tr ';' '\n' | grep -n "^$1\$" | cut -d: -f1; }
succ=$(echo "$last" | cut -d';' -f"$(col SuccessfulCall\(C\))")
fail=$(echo "$last" | cut -d';' -f"$(col FailedCall\(C\))")
cpu_ticks=$(awk '{print $14 + $15}' "/proc/$pbx_pid/stat")
hz=$(getconf CLK_TCK)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pbx_pid/status")
echo "calls: $n at $rate/s, held ${hold} ms"
echo "sipp successful: $succ  failed: $fail"
awk -v s="$start" -v e="$end" 'BEGIN { printf "wall time: %.1f s\n", e - s }'
awk -v t="$cpu_ticks" -v hz="$hz" -v n="$n" 'BEGIN { printf "PBX CPU: %.2f s total, %.0f us per call (2 dialogs, ~12 messages)\n", t / hz, t / hz / n * 1e6 }'
echo "PBX peak RSS: $((rss_kb / 1024)) MiB"
grep -cE "level=(ERROR|WARN)" "$work/pbx.log" | xargs echo "PBX warnings/errors logged:"

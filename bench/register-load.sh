#!/usr/bin/env bash
# REGISTER load through the officepbx binary: N extensions, each registering with a full digest
# exchange (REGISTER, 401, REGISTER with credentials, 200), driven by sipp at RATE registrations
# per second. Prints sipp's counts and the PBX's CPU time, for docs/benchmarks.md.
#
#   bench/register-load.sh [N=1000] [RATE=200] [DB=sqlite]    (DB: sqlite or postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
rate=${2:-200}
dbkind=${3:-sqlite}
work=$(mktemp -d)
trap 'kill $pbx_pid 2>/dev/null || true; rm -rf "$work"' EXIT

case "$dbkind" in
  sqlite) db="sqlite:$work/pbx.db" ;;
  postgres)
    schema="bench_$$"
    PGOPTIONS="-c client_min_messages=warning" psql -q -h 127.0.0.1 -U postgres test -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema"
    db="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema"
    trap 'kill $pbx_pid 2>/dev/null || true; PGOPTIONS="-c client_min_messages=warning" psql -q -h 127.0.0.1 -U postgres test -c "DROP SCHEMA IF EXISTS '"$schema"' CASCADE"; rm -rf "$work"' EXIT
    ;;
  *) echo "DB must be sqlite or postgres"; exit 2 ;;
esac

go build -o "$work/officepbx" ./examples/officepbx
echo "creating $n extensions in $dbkind"
{
  echo "SEQUENTIAL"
  for i in $(seq 1 "$n"); do
    ext=$((10000 + i))
    echo "$ext;[authentication username=$ext password=pw$ext]"
  done
} > "$work/users.csv"
for i in $(seq 1 "$n"); do
  ext=$((10000 + i))
  "$work/officepbx" ext add "$ext" --password "pw$ext" --db "$db" >/dev/null
done

port=$((20000 + RANDOM % 20000))
"$work/officepbx" serve --sip "127.0.0.1:$port" --db "$db" --log-level warn 2> "$work/pbx.log" &
pbx_pid=$!
sleep 1

start=$(date +%s.%N)
sipp -sf bench/register-load.xml -inf "$work/users.csv" -i 127.0.0.1 -p $((port + 1)) \
  -r "$rate" -m "$n" -l 500 -timeout 120s -timeout_error -trace_stat -stf "$work/stat.csv" \
  -trace_err -error_file "$work/errors.log" -bg "127.0.0.1:$port" > /dev/null 2>&1 || true
# -bg returns at once; wait for sipp to finish.
while pgrep -f "register-load.xml" > /dev/null; do sleep 0.5; done
end=$(date +%s.%N)

cpu_ticks=$(awk '{print $14 + $15}' "/proc/$pbx_pid/stat")
hz=$(getconf CLK_TCK)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pbx_pid/status")
last=$(tail -n 1 "$work/stat.csv")
header=$(head -n 1 "$work/stat.csv")
col() { echo "$header" | tr ';' '\n' | grep -n "^$1\$" | cut -d: -f1; }
succ=$(echo "$last" | cut -d';' -f"$(col SuccessfulCall\(C\))")
fail=$(echo "$last" | cut -d';' -f"$(col FailedCall\(C\))")
registered=$("$work/officepbx" ext list --db "$db" | awk 'NR > 1 && $NF != "-" && $NF !~ /,/' | wc -l)

echo "registrations attempted: $n at $rate/s over $dbkind"
echo "sipp successful: $succ  failed: $fail"
echo "extensions with a live binding afterwards: $registered"
awk -v s="$start" -v e="$end" 'BEGIN { printf "wall time: %.1f s\n", e - s }'
awk -v t="$cpu_ticks" -v hz="$hz" -v n="$n" 'BEGIN { printf "PBX CPU: %.2f s total, %.0f us per registration (2 transactions)\n", t / hz, t / hz / n * 1e6 }'
echo "PBX peak RSS: $((rss_kb / 1024)) MiB"
if [ -s "$work/errors.log" ]; then echo "sipp errors (first lines):"; head -5 "$work/errors.log"; fi
grep -E "level=(ERROR|WARN)" "$work/pbx.log" | head -5 || true

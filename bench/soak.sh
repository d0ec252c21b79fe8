#!/usr/bin/env bash
# Soak (issue 12): calls with media at a steady rate through the officepbx binary for a bounded
# time, with faults injected (callees going silent mid-call, a callee phone killed, the database
# cut for 10 s, bursts of garbage and malformed SIP), then checks that goroutines, descriptors,
# relay ports, dialogs, calls and pending records are back at their baseline, RSS is flat, and
# every call has exactly one record. The work is bench/soak (Go); this script builds and starts
# the PBX on a fresh Postgres database (reached through the soak's TCP proxy, which cuts it).
#
#   bench/soak.sh [DURATION=30m] [RATE=10] [soak flags...]   e.g. bench/soak.sh 30m 10
#   bench/soak.sh --short [soak flags...]                    4 minutes at 10 calls/s
#
# Postgres: PBX_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable)
# names the server; a database soak_<random> is created there and dropped at the end. Exit status
# 0 on PASS, 1 on FAIL. Logs stay in the directory printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--short" ]; then
	duration=4m rate=10
	shift
else
	duration=${1:-30m} rate=${2:-10}
	shift $(($# < 2 ? $# : 2))
fi
base=${PBX_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
userinfo=$(sed -nE 's#^[a-z]+://([^@/]*@).*#\1#p' <<<"$base")
hostport=$(sed -E 's#^[a-z]+://([^@/]*@)?([^/?]+).*#\2#' <<<"$base")
[[ $hostport == *:* ]] || hostport=$hostport:5432
query=$(sed -nE 's#^[^?]*(\?.*)$#\1#p' <<<"$base")
db=soak_$(date +%s)_$RANDOM
sip=$((10000 + RANDOM % 9000)) # below the ephemeral range, where the phones' sockets are
http=$((sip + 1))
proxy=$((sip + 2))
rtp=20000-23999
direct="postgres://${userinfo}${hostport}/${db}${query}"
viaproxy="postgres://${userinfo}127.0.0.1:${proxy}/${db}${query}"
work=$(mktemp -d /tmp/soak.XXXXXX)
pbx_pid= soak_pid=
cleanup() {
	[ -n "$soak_pid" ] && kill "$soak_pid" 2>/dev/null || true
	if [ -n "$pbx_pid" ]; then
		kill "$pbx_pid" 2>/dev/null || true
		wait "$pbx_pid" 2>/dev/null || true
	fi
	psql "$base" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	echo "logs: $work (soak.log, pbx.log, samples.csv, goroutines-*.txt, heap-*.pprof)"
}
trap cleanup EXIT

go build -o "$work/officepbx" ./examples/officepbx
go build -o "$work/soak" ./bench/soak
psql "$base" -qc "CREATE DATABASE $db" >/dev/null
for n in $(seq 2000 2039); do
	"$work/officepbx" ext add "$n" --password "pw$n" --db "$direct" >/dev/null
done
echo "soak: $duration at $rate calls/s; database $db; PBX SIP 127.0.0.1:$sip, HTTP :$http, RTP $rtp; commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+changes')"

: >"$work/soak.log"
"$work/soak" -sip "127.0.0.1:$sip" -http "127.0.0.1:$http" -db "$direct" -proxy "127.0.0.1:$proxy" \
	-proxy-target "$hostport" -exts 2000-2039 -duration "$duration" -rate "$rate" -media-timeout 5s \
	-csv "$work/samples.csv" -pprof-dir "$work" "$@" >"$work/soak.log" 2>&1 &
soak_pid=$!
tail -n +1 --pid="$soak_pid" -f "$work/soak.log" &
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$proxy") 2>/dev/null && break
	sleep 0.1
done
"$work/officepbx" serve --sip "127.0.0.1:$sip" --db "$viaproxy" --http "127.0.0.1:$http" --rtp-ports "$rtp" \
	--trust 127.0.0.1/32 --media-timeout 5s --log-level warn --pprof --record-spool "$work/records.spool" 2>"$work/pbx.log" &
pbx_pid=$!
rc=0
wait "$soak_pid" || rc=$?
soak_pid=
grep -q "SOAK: PASS" "$work/soak.log" || rc=1

cpu_ticks=$(awk '{print $14 + $15}' "/proc/$pbx_pid/stat")
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pbx_pid/status")
awk -v t="$cpu_ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "PBX CPU: %.1f s in all\n", t / hz }'
echo "PBX peak RSS (VmHWM): $((rss_kb / 1024)) MiB"
echo "PBX log lines at warn/error: $(grep -cE 'level=(WARN|ERROR)' "$work/pbx.log" || true); most frequent messages:"
grep -oE 'level=(WARN|ERROR) msg="[^"]*"|level=(WARN|ERROR) msg=[^ ]*' "$work/pbx.log" | sort | uniq -c | sort -rn | head -12 || true
exit "$rc"

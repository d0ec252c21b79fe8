#!/usr/bin/env bash
# Call rate beside Kamailio (issue 12): sipp UAC -> SYSTEM -> sipp UAS, calls held HOLD ms, the
# rate stepped up until a step is dirty (more than 0.1% of its calls failed, or any
# retransmission on either sipp side). The systems run side by side and are measured step by
# step in one run (each round starts at the next system, so none always follows the same one):
#
#   kamailio     Kamailio as a stateful record-routing proxy (bench/kamailio/proxy.cfg)
#   pbx-default  officepbx, default routing (no dialplan), caller trusted
#   pbx-lua      officepbx, Lua dialplan bench/dialplan.lua (look the extension up, connect)
#   pbx-relay    pbx-lua with the media relay on (SDP rewritten both ways; no RTP is sent)
#   pbx-auth     pbx-lua, the caller untrusted: every INVITE is challenged (407) and sent again
#                with digest credentials
#
# The same sipp UAS process answers for every system; each step runs a new sipp UAC with the
# same settings (bench/sipp/uac.xml, or uac-auth.xml for pbx-auth). All of it shares the
# machine's cores: the CPU sipp used is printed beside the system's.
#
#   bench/call-rate.sh
#   RATES="200 400 600" STEP_S=6 SYSTEMS="kamailio pbx-lua" bench/call-rate.sh
#
# Environment: RATES (calls/s, ascending), STEP_S (seconds of calls per step, default 8), HOLD
# (ms, default 1000), GAP_S (pause between steps, default 2), SYSTEMS (default all five),
# DB (sqlite or postgres, default sqlite), PROFILE_AT (the rate at whose step pbx-lua is profiled
# for STEP_S - 2 seconds, default none) with PROFILER (pprof: Go's CPU profile through --pprof,
# the default; perf: `perf record -g` on the process) into PROFILE_OUT (default
# /tmp/officepbx-cpu.PROFILER), KEEP_WORK=1 keeps the work folder (the officepbx binary is there).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

rates=${RATES:-"200 400 600 800 1000 1200 1400 1600 1800 2000 2400 2800 3200 3600 4000"}
step_s=${STEP_S:-8}
hold=${HOLD:-1000}
gap_s=${GAP_S:-2}
systems=${SYSTEMS:-"kamailio pbx-default pbx-lua pbx-relay pbx-auth"}
dbkind=${DB:-sqlite}
profile_at=${PROFILE_AT:-}
profiler=${PROFILER:-pprof}
profile_out=${PROFILE_OUT:-/tmp/officepbx-cpu.$profiler}
modules=${KAMAILIO_MODULES:-/usr/lib/x86_64-linux-gnu/kamailio/modules}

work=$(mktemp -d)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

echo "call-rate: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+changes'), $(nproc) cores"
echo "rates: $rates; $step_s s per step, calls held $hold ms, $gap_s s between steps; DB $dbkind"
echo "at start: $(load_line)"

go build -o "$work/officepbx" ./examples/officepbx
sipp_opts=(-i 127.0.0.1 -buff_size 4194304 -nostdin)

uas_port=$(free_port)
declare -A sip_port pid http_port
for s in $systems; do sip_port[$s]=$(free_port); done

# --- the systems -------------------------------------------------------------------------------
# shellcheck disable=SC2317 # run by the EXIT trap
drop_schemas() {
	local s
	while read -r s; do
		psql -q -h 127.0.0.1 -U postgres test -c "DROP SCHEMA IF EXISTS $s CASCADE" 2>/dev/null || true
	done <"$work/schemas"
}
start_pbx() { # NAME [serve flags...]
	local name=$1 db
	shift
	case "$dbkind" in
		sqlite) db="sqlite:$work/$name.db" ;;
		postgres)
			local schema="bench_${name//-/_}_$$"
			psql -q -h 127.0.0.1 -U postgres test -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema" 2>/dev/null
			echo "$schema" >>"$work/schemas"
			db="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema"
			;;
	esac
	"$work/officepbx" ext add 100 --password pw100 --db "$db" >/dev/null
	"$work/officepbx" ext add 200 --password pw200 --db "$db" >/dev/null
	http_port[$name]=$(free_port)
	"$work/officepbx" serve --sip "127.0.0.1:${sip_port[$name]}" --db "$db" --log-level warn \
		--http "127.0.0.1:${http_port[$name]}" --pprof "$@" 2>"$work/$name.log" &
	pid[$name]=$!
	bench_track "${pid[$name]}"
	wait_port "${sip_port[$name]}"
}

for s in $systems; do
	case $s in
		kamailio)
			kamailio -f bench/kamailio/proxy.cfg -L "$modules" -l "udp:127.0.0.1:${sip_port[$s]}" \
				-A 'UAS_HOST="127.0.0.1"' -A "UAS_PORT=$uas_port" -n 2 -m 1024 -M 16 \
				-w "$work" -P "$work/kamailio.pid" -DD -E >"$work/kamailio.log" 2>&1 &
			pid[$s]=$!
			bench_track "${pid[$s]}"
			wait_port "${sip_port[$s]}"
			;;
		pbx-default) start_pbx "$s" --trust 127.0.0.0/8 ;;
		pbx-lua) start_pbx "$s" --trust 127.0.0.0/8 --dialplan bench/dialplan.lua ;;
		pbx-relay) start_pbx "$s" --trust 127.0.0.0/8 --dialplan bench/dialplan.lua --rtp-ports 30000-59999 ;;
		pbx-auth) start_pbx "$s" --dialplan bench/dialplan.lua --source-rate -1 ;;
		*)
			echo "unknown system $s" >&2
			exit 2
			;;
	esac
done
if [ -s "$work/schemas" ]; then
	trap 'drop_schemas; bench_cleanup' EXIT
fi

# The callee: extension 200 at every officepbx, registered from the UAS's port before the UAS
# takes it (from a trusted network; with digest where the caller is not trusted).
for s in $systems; do
	case $s in
		pbx-auth) scen=(-sf bench/sipp/register-uas-auth.xml -au 200 -ap pw200) ;;
		pbx-*) scen=(-sf bench/sipp/register-uas.xml) ;;
		*) continue ;;
	esac
	if ! sipp "${scen[@]}" -s 200 -m 1 "${sipp_opts[@]}" -p "$uas_port" -timeout 10s -timeout_error \
		"127.0.0.1:${sip_port[$s]}" >/dev/null 2>&1; then
		echo "registering 200 at $s failed" >&2
		exit 1
	fi
done
sipp -sf bench/sipp/uas.xml "${sipp_opts[@]}" -p "$uas_port" -trace_stat -stf "$work/uas.csv" -fd 1 \
	>/dev/null 2>&1 &
uas_pid=$!
bench_track "$uas_pid"
wait_port "$uas_port"
sleep 1.5

# --- the steps ---------------------------------------------------------------------------------
declare -A clean dirty why cpu_sum cpu_n
active=" $systems "
all_pids() { local s; for s in $systems; do echo "${pid[$s]}"; done; }

run_step() { # SYSTEM RATE
	local s=$1 rate=$2
	local n=$((rate * step_s)) csv="$work/uac-$1-$2.csv" scen=(-sf bench/sipp/uac.xml)
	[ "$s" = pbx-auth ] && scen=(-sf bench/sipp/uac-auth.xml -au 100 -ap pw100)
	local uas_r0 sys0 all0 uas0 t0 t1 shed0=0
	[ -n "${http_port[$s]:-}" ] && shed0=$(shed_count "$s")
	uas_r0=$(csv_col "$work/uas.csv" 'Retransmissions(C)')
	sys0=$(cpu_ticks "${pid[$s]}")
	# shellcheck disable=SC2046
	all0=$(cpu_ticks $(all_pids))
	uas0=$(cpu_ticks "$uas_pid")
	local prof_pid=""
	if [ "$s" = pbx-lua ] && [ "$rate" = "$profile_at" ]; then
		case $profiler in
			pprof) (sleep 1 && curl -s -o "$profile_out" "http://127.0.0.1:${http_port[$s]}/debug/pprof/profile?seconds=$((step_s - 2))") & ;;
			perf) (sleep 1 && perf record -q -g -p "${pid[$s]}" -o "$profile_out" -- sleep $((step_s - 2)) >/dev/null 2>&1) & ;;
		esac
		prof_pid=$!
	fi
	t0=$(date +%s.%N)
	/usr/bin/time -f "%U %S" -o "$work/uac.time" \
		sipp "${scen[@]}" -s 200 "${sipp_opts[@]}" -p "$(free_port)" -r "$rate" -m "$n" -l $((rate * 4)) \
		-d "$hold" -timeout $((step_s + 40))s -timeout_error -trace_stat -stf "$csv" \
		"127.0.0.1:${sip_port[$s]}" >/dev/null 2>&1 || true
	t1=$(date +%s.%N)
	[ -n "$prof_pid" ] && wait "$prof_pid"
	sleep 1.2 # the UAS writes its counters every second
	local ok fail retr uas_r sys all uas uac_cpu
	ok=$(csv_col "$csv" 'SuccessfulCall(C)')
	fail=$(csv_col "$csv" 'FailedCall(C)')
	retr=$(csv_col "$csv" 'Retransmissions(C)')
	uas_r=$(($(csv_col "$work/uas.csv" 'Retransmissions(C)') - uas_r0))
	sys=$(($(cpu_ticks "${pid[$s]}") - sys0))
	# shellcheck disable=SC2046
	all=$(($(cpu_ticks $(all_pids)) - all0 - sys))
	uas=$(($(cpu_ticks "$uas_pid") - uas0))
	uac_cpu=$(tail -n 1 "$work/uac.time" | awk '{printf "%.2f", $1 + $2}')
	local shed=0 kinds
	[ -n "${http_port[$s]:-}" ] && shed=$(($(shed_count "$s") - shed0))
	kinds=$(failure_kinds "$csv")
	local verdict=clean
	if [ "$((fail * 1000))" -gt "$n" ] || [ "$retr" -gt 0 ] || [ "$uas_r" -gt 0 ]; then
		verdict=DIRTY
	fi
	local us_per_call
	us_per_call=$(awk -v t="$sys" -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.0f", t / hz / n * 1e6 }')
	printf '%-11s %5d/s  calls %6d ok %6d failed %5d  retrans uac %5d uas %5d  wall %5.1fs  cpu: system %6ss (%4s us/call) others %5ss sipp uac %5ss uas %5ss  %s\n' \
		"$s" "$rate" "$n" "$ok" "$fail" "$retr" "$uas_r" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
		"$(ticks_to_s "$sys")" "$us_per_call" "$(ticks_to_s "$all")" "$uac_cpu" "$(ticks_to_s "$uas")" "$verdict"
	if [ "$fail" -gt 0 ] || [ "$shed" -gt 0 ]; then echo "             failures: ${kinds:-none}; requests shed by officepbx: $shed"; fi
	if [ "$verdict" = clean ]; then
		clean[$s]=$rate
		cpu_sum[$s]=$((${cpu_sum[$s]:-0} + us_per_call))
		cpu_n[$s]=$((${cpu_n[$s]:-0} + 1))
		echo "$s $rate $us_per_call" >>"$work/cpu-per-call"
	else
		dirty[$s]=$rate
		why[$s]="failed $fail, retrans uac $retr uas $uas_r"
		[ "$shed" -gt 0 ] && why[$s]="${why[$s]}, shed $shed"
		[ -n "$kinds" ] && why[$s]="${why[$s]}; $kinds"
		active=${active/ $s / }
	fi
}

# shed_count SYSTEM: requests officepbx refused before a transaction (503 overloaded, or dropped).
shed_count() {
	curl -sf "http://127.0.0.1:${http_port[$1]}/metrics" | awk '/^pbxkit_requests_shed_total/ { n += $2 } END { print n + 0 }'
}

step_all calls/s

# --- summary -----------------------------------------------------------------------------------
echo
echo "system       clean up to  first dirty (why)                          ratio to kamailio  CPU/call (clean steps both ran)"
k=${clean[kamailio]:-0}
for s in $systems; do
	c=${clean[$s]:-0}
	d=${dirty[$s]:-"none (top of RATES)"}
	ratio="-"
	[ "$k" -gt 0 ] && ratio=$(awk -v a="$c" -v b="$k" 'BEGIN { printf "%.2fx", a / b }')
	# CPU per call over the rates at which this system and Kamailio were both clean.
	cpu=$(awk -v s="$s" '
		$1 == "kamailio" { k[$2] = $3 } $1 == s { m[$2] = $3 }
		END { for (r in m) if (r in k) { a += m[r]; b += k[r]; n++ }
		      if (n) printf "%.0f us vs %.0f us (%.1fx kamailio, %d steps)", a / n, b / n, (a / n) / (b / n), n }' \
		"$work/cpu-per-call" 2>/dev/null)
	[ "$s" = kamailio ] && [ -n "$cpu" ] && cpu=$(cut -d' ' -f1-2 <<<"$cpu")
	[ -n "${why[$s]:-}" ] && d="$d (${why[$s]})"
	printf '%-12s %6s/s     %-42s %-18s %s\n' "$s" "$c" "$d" "$ratio" "$cpu"
done
echo "(clean: at most 0.1% failed and no retransmission; the sipp UAC and UAS ran on the same cores)"
for s in $systems; do
	[ "$s" = kamailio ] && continue
	n=$(grep -cE "level=(ERROR|WARN)" "$work/$s.log" || true)
	[ "$n" -gt 0 ] && echo "$s logged $n warnings/errors, first: $(grep -m1 -E 'level=(ERROR|WARN)' "$work/$s.log" | cut -c1-200)"
done
exit 0

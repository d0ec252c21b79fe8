#!/usr/bin/env bash
# Call rate of 1, 2 and 3 officepbx nodes behind Kamailio's dispatcher (issue 16): sipp UAC ->
# Kamailio (bench/kamailio/dispatcher.cfg, round robin) -> a node -> Kamailio -> sipp UAS, calls
# held HOLD ms, the rate stepped up until a step is dirty (more than 0.1% of its calls failed, or
# any retransmission on either sipp side). The nodes share one Postgres schema; the UAS registered
# once, through the balancer (its binding names the balancer, so every node reaches it there).
# Three nodes run throughout; each round lists the first N of them in the dispatcher and starts
# Kamailio again on the same port.
#
#   bench/cluster.sh
#   NODES="1 2" RATES="200 400 600" STEP_S=6 bench/cluster.sh
#
# Environment: NODES (default "1 2 3"), RATES (calls/s, ascending), STEP_S (seconds of calls per
# step, default 6), HOLD (ms, default 1000), GAP_S (pause between steps, default 2), DIALPLAN
# (default bench/dialplan.lua; "" for default routing), KEEP_WORK=1 keeps the work folder.
# On a machine with few cores the nodes, Kamailio and sipp share them: read the ratios as what
# one more node costs or gains there, not as a cluster's scaling.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

node_counts=${NODES:-"1 2 3"}
rates=${RATES:-"100 200 300 400 500 600 800 1000 1200 1400 1600 1800 2000"}
step_s=${STEP_S:-6}
hold=${HOLD:-1000}
gap_s=${GAP_S:-2}
dialplan=${DIALPLAN-bench/dialplan.lua}
modules=${KAMAILIO_MODULES:-/usr/lib/x86_64-linux-gnu/kamailio/modules}

work=$(mktemp -d)
schema="bench_cluster_$$"
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	psql -q -h 127.0.0.1 -U postgres test -c "DROP SCHEMA IF EXISTS $schema CASCADE" 2>/dev/null || true
	bench_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "cluster: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+changes'), $(nproc) cores"
echo "nodes: $node_counts; rates: $rates; $step_s s per step, calls held $hold ms; dialplan ${dialplan:-none}"
echo "at start: $(load_line)"

go build -o "$work/officepbx" ./examples/officepbx
psql -q -h 127.0.0.1 -U postgres test -c "CREATE SCHEMA $schema"
db="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema"
"$work/officepbx" migrate --db "$db" >/dev/null
"$work/officepbx" ext add 200 --password pw200 --db "$db" >/dev/null
sipp_opts=(-i 127.0.0.1 -buff_size 4194304 -nostdin)

declare -a node_port node_pid
for i in 1 2 3; do
	node_port[$i]=$(free_port)
	"$work/officepbx" serve --sip "127.0.0.1:${node_port[$i]}" --db "$db" --node-id "node$i" --log-level warn \
		--trust 127.0.0.0/8 --dialplan "$dialplan" --record-spool off 2>"$work/node$i.log" &
	node_pid[$i]=$!
	bench_track "${node_pid[$i]}"
	wait_port "${node_port[$i]}"
done
kam_port=$(free_port)
uas_port=$(free_port)

start_kamailio() { # N: the first N nodes
	local n=$1 i
	: >"$work/dispatcher.list"
	for i in $(seq "$n"); do echo "1 sip:127.0.0.1:${node_port[$i]}" >>"$work/dispatcher.list"; done
	kamailio -f bench/kamailio/dispatcher.cfg -L "$modules" -l "udp:127.0.0.1:$kam_port" \
		-A "DS_LIST=\"$work/dispatcher.list\"" -A 'DS_ALG="4"' -n 2 -m 1024 -M 16 \
		-w "$work" -P "$work/kamailio.pid" -DD -E >"$work/kamailio-$n.log" 2>&1 &
	kam_pid=$!
	bench_track "$kam_pid"
	wait_port "$kam_port"
	sleep 1.5 # the first OPTIONS round
}
stop_kamailio() {
	kill "$kam_pid" 2>/dev/null || true
	wait "$kam_pid" 2>/dev/null || true
	for _ in $(seq 50); do ss -Hlun "sport = :$kam_port" | grep -q . || return 0; sleep 0.1; done
}

# The callee: extension 200, registered through the balancer from the UAS's port.
start_kamailio 1
sipp -sf bench/sipp/register-uas.xml -s 200 -m 1 "${sipp_opts[@]}" -p "$uas_port" -timeout 10s -timeout_error \
	"127.0.0.1:$kam_port" >/dev/null 2>&1 || { echo "registering 200 through the balancer failed" >&2; exit 1; }
sipp -sf bench/sipp/uas.xml "${sipp_opts[@]}" -p "$uas_port" -trace_stat -stf "$work/uas.csv" -fd 1 >/dev/null 2>&1 &
uas_pid=$!
bench_track "$uas_pid"
wait_port "$uas_port"
sleep 1.5

declare -A clean
for n in $node_counts; do
	stop_kamailio
	start_kamailio "$n"
	echo "-- $n node(s)"
	for rate in $rates; do
		sleep "$gap_s"
		calls=$((rate * step_s))
		csv="$work/uac-$n-$rate.csv"
		uas_r0=$(csv_col "$work/uas.csv" 'Retransmissions(C)')
		nodes0=$(cpu_ticks "${node_pid[@]}")
		kam0=$(cpu_ticks "$kam_pid")
		sipp -sf bench/sipp/uac.xml -s 200 "${sipp_opts[@]}" -p "$(free_port)" -r "$rate" -m "$calls" -l $((rate * 4)) \
			-d "$hold" -timeout $((step_s + 40))s -timeout_error -trace_stat -stf "$csv" \
			"127.0.0.1:$kam_port" >/dev/null 2>&1 || true
		sleep 1.2 # the UAS writes its counters every second
		ok=$(csv_col "$csv" 'SuccessfulCall(C)')
		fail=$(csv_col "$csv" 'FailedCall(C)')
		retr=$(csv_col "$csv" 'Retransmissions(C)')
		uas_r=$(($(csv_col "$work/uas.csv" 'Retransmissions(C)') - uas_r0))
		nodes_cpu=$(($(cpu_ticks "${node_pid[@]}") - nodes0))
		kam_cpu=$(($(cpu_ticks "$kam_pid") - kam0))
		verdict=clean
		if [ "$((fail * 1000))" -gt "$calls" ] || [ "$retr" -gt 0 ] || [ "$uas_r" -gt 0 ]; then verdict=DIRTY; fi
		printf '%d node(s) %5d/s  calls %6d ok %6d failed %5d  retrans uac %5d uas %5d  cpu: nodes %6ss kamailio %5ss  %s\n' \
			"$n" "$rate" "$calls" "$ok" "$fail" "$retr" "$uas_r" "$(ticks_to_s "$nodes_cpu")" "$(ticks_to_s "$kam_cpu")" "$verdict"
		[ "$fail" -gt 0 ] && echo "             failures: $(failure_kinds "$csv")"
		if [ "$verdict" = DIRTY ]; then break; fi
		clean[$n]=$rate
	done
done
echo "at end: $(load_line)"

echo
echo "nodes  clean up to  ratio to 1 node"
base=${clean[1]:-0}
for n in $node_counts; do
	c=${clean[$n]:-0}
	ratio=$(awk -v c="$c" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", c / b; else print "-" }')
	printf '%5d  %8d/s   %s\n' "$n" "$c" "$ratio"
done

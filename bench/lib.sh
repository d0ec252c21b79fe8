# shellcheck shell=bash
# Helpers shared by the bench/ scripts: source it, do not run it.
#
#   bench_track PID...         kill these processes (and their process groups' children) on exit
#   bench_cleanup              what the EXIT trap runs: stops every tracked process, removes $work
#   free_port                  a UDP and TCP port on 127.0.0.1 that nothing listens on
#   wait_port PORT             until something listens on UDP PORT (10 s at most)
#   csv_col FILE NAME          the value of column NAME in the last line of a sipp -trace_stat CSV
#   failure_kinds FILE        the non-zero Failed* counters of a sipp -trace_stat CSV, "Name=N ..."
#   cpu_ticks PID...           user+system clock ticks of these processes and their children
#   ticks_to_s TICKS           clock ticks as seconds
#   rss_kb PID                 resident set size in KiB
#   load_line                  "load average: ..." of the machine, for the notes

bench_pids=()
bench_ports=()

bench_track() { bench_pids+=("$@"); }

bench_cleanup() {
	local p
	for p in "${bench_pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	# Give them a moment, then make sure (sipp ignores SIGTERM while it drains calls).
	sleep 0.3
	for p in "${bench_pids[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	if [ -n "${work:-}" ] && [ -d "$work" ] && [ -z "${KEEP_WORK:-}" ]; then
		rm -rf "$work"
	fi
}

# free_port picks a random port in 10000-29999 that no UDP or TCP socket on the machine uses and
# that this script has not handed out before.
free_port() {
	local p used
	used=$(ss -Hantu 2>/dev/null | awk '{print $5}' | sed 's/.*://' | sort -u)
	while :; do
		p=$((10000 + RANDOM % 20000))
		if ! grep -qx "$p" <<<"$used" && [[ " ${bench_ports[*]} " != *" $p "* ]]; then
			bench_ports+=("$p")
			echo "$p"
			return
		fi
	done
}

wait_port() {
	for _ in $(seq 100); do
		if ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on UDP port $1" >&2
	return 1
}

csv_col() {
	local file=$1 name=$2 idx
	idx=$(head -n 1 "$file" | tr ';' '\n' | grep -nxF "$name" | cut -d: -f1)
	if [ -z "$idx" ]; then
		echo "no column $name in $file" >&2
		echo 0
		return
	fi
	tail -n 1 "$file" | cut -d';' -f"$idx"
}

failure_kinds() {
	paste -d= <(head -n 1 "$1" | tr ';' '\n') <(tail -n 1 "$1" | tr ';' '\n') |
		awk -F= '$1 ~ /^Failed.+\(C\)$/ && $2 > 0 { sub(/\(C\)/, "", $1); printf "%s%s=%s", sep, $1, $2; sep = " " }'
}

cpu_ticks() {
	local total=0 p c t
	for p in "$@"; do
		for c in "$p" $(cat "/proc/$p/task/$p/children" 2>/dev/null); do
			t=$(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)
			total=$((total + ${t:-0}))
		done
	done
	echo "$total"
}

ticks_to_s() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'; }

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

load_line() { uptime | sed 's/.*load average/load average/'; }

# step_all UNIT: steps every system in $systems through $rates, interleaved (each round starts at
# the next system, so outside load hits them alike), calling run_step SYSTEM RATE; a system
# leaves $active at its first dirty step (run_step's business).
# shellcheck disable=SC2154 # systems, rates, active and gap_s are the calling script's settings
step_all() {
	local unit=$1 rate i s round=0 sys_list
	read -ra sys_list <<<"$systems"
	for rate in $rates; do
		[ -z "${active// /}" ] && break
		echo "-- $rate $unit ($(load_line))"
		for i in "${!sys_list[@]}"; do
			s=${sys_list[$(((i + round) % ${#sys_list[@]}))]}
			[[ "$active" == *" $s "* ]] || continue
			sleep "$gap_s"
			run_step "$s" "$rate"
		done
		round=$((round + 1))
	done
	echo "at end: $(load_line)"
}

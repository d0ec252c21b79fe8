#!/usr/bin/env bash
# REGISTER rate beside Kamailio's registrar (issue 12): sipp registers USERS extensions in turn
# (each REGISTER refreshes a binding) at a stepped rate until a step is dirty (more than 0.1% of
# the registrations failed, or any retransmission). The systems run side by side and are measured
# step by step in one run, each round starting at the next system:
#
#   kamailio       registrar + usrloc, bindings in memory only (db_mode 0), no authentication
#   pbx            officepbx, the source trusted (no authentication), bindings in SQLite
#   kamailio-auth  kamailio with a digest challenge on every REGISTER (passwords in the script)
#   pbx-auth       officepbx, the source not trusted: a digest challenge on every REGISTER
#
# A registration is REGISTER, 200 without authentication; REGISTER, 401, REGISTER with
# credentials, 200 with it (bench/sipp/register.xml, bench/register-load.xml). The sipp process
# shares the cores: its CPU is printed beside the system's.
#
#   bench/register-rate.sh
#   RATES="500 1000" STEP_S=5 SYSTEMS="kamailio pbx" bench/register-rate.sh
#
# Environment: RATES (registrations/s, ascending), STEP_S (seconds per step, default 6), GAP_S
# (default 2), USERS (extensions, default 1000), SYSTEMS (default all four), KEEP_WORK=1.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

rates=${RATES:-"500 750 1000 1250 1500 2000 3000 4000 5000 6000 8000 10000 12000 15000 20000"}
step_s=${STEP_S:-6}
gap_s=${GAP_S:-2}
users=${USERS:-1000}
systems=${SYSTEMS:-"kamailio pbx kamailio-auth pbx-auth"}
modules=${KAMAILIO_MODULES:-/usr/lib/x86_64-linux-gnu/kamailio/modules}

work=$(mktemp -d)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

echo "register-rate: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+changes'), $(nproc) cores"
echo "rates: $rates; $step_s s per step, $gap_s s between steps; $users extensions; officepbx on SQLite"
echo "at start: $(load_line)"

go build -o "$work/officepbx" ./examples/officepbx
{
	echo "SEQUENTIAL"
	for i in $(seq 1 "$users"); do
		ext=$((10000 + i))
		echo "$ext;[authentication username=$ext password=pw$ext]"
	done
} >"$work/users.csv"
if [[ " $systems " == *" pbx"* ]]; then
	echo "creating $users extensions"
	for i in $(seq 1 "$users"); do
		"$work/officepbx" ext add $((10000 + i)) --password "pw$((10000 + i))" --db "sqlite:$work/template.db" >/dev/null
	done
fi

declare -A sip_port pid
for s in $systems; do
	sip_port[$s]=$(free_port)
	case $s in
		kamailio | kamailio-auth)
			auth=()
			[ "$s" = kamailio-auth ] && auth=(-A WITH_AUTH)
			kamailio -f bench/kamailio/registrar.cfg -L "$modules" -l "udp:127.0.0.1:${sip_port[$s]}" "${auth[@]}" \
				-n 2 -m 1024 -M 16 -w "$work" -P "$work/$s.pid" -DD -E >"$work/$s.log" 2>&1 &
			;;
		pbx | pbx-auth)
			cp "$work/template.db" "$work/$s.db"
			trust=(--trust 127.0.0.0/8)
			[ "$s" = pbx-auth ] && trust=(--source-rate -1)
			"$work/officepbx" serve --sip "127.0.0.1:${sip_port[$s]}" --db "sqlite:$work/$s.db" --log-level warn \
				"${trust[@]}" 2>"$work/$s.log" &
			;;
		*)
			echo "unknown system $s" >&2
			exit 2
			;;
	esac
	pid[$s]=$!
	bench_track "${pid[$s]}"
	wait_port "${sip_port[$s]}"
done
sleep 1

declare -A clean dirty why
active=" $systems "
all_pids() { local s; for s in $systems; do echo "${pid[$s]}"; done; }

run_step() { # SYSTEM RATE
	local s=$1 rate=$2
	local n=$((rate * step_s)) csv="$work/reg-$1-$2.csv" scen=bench/sipp/register.xml
	[[ "$s" == *-auth ]] && scen=bench/register-load.xml
	local sys0 all0 t0 t1
	sys0=$(cpu_ticks "${pid[$s]}")
	# shellcheck disable=SC2046
	all0=$(cpu_ticks $(all_pids))
	t0=$(date +%s.%N)
	/usr/bin/time -f "%U %S" -o "$work/sipp.time" \
		sipp -sf "$scen" -inf "$work/users.csv" -i 127.0.0.1 -p "$(free_port)" -buff_size 4194304 -nostdin \
		-r "$rate" -m "$n" -l $((rate * 2)) -timeout $((step_s + 40))s -timeout_error \
		-trace_stat -stf "$csv" "127.0.0.1:${sip_port[$s]}" >/dev/null 2>&1 || true
	t1=$(date +%s.%N)
	local ok fail retr sys all sipp_cpu verdict=clean
	ok=$(csv_col "$csv" 'SuccessfulCall(C)')
	fail=$(csv_col "$csv" 'FailedCall(C)')
	retr=$(csv_col "$csv" 'Retransmissions(C)')
	sys=$(($(cpu_ticks "${pid[$s]}") - sys0))
	# shellcheck disable=SC2046
	all=$(($(cpu_ticks $(all_pids)) - all0 - sys))
	sipp_cpu=$(tail -n 1 "$work/sipp.time" | awk '{printf "%.2f", $1 + $2}')
	if [ "$((fail * 1000))" -gt "$n" ] || [ "$retr" -gt 0 ]; then verdict=DIRTY; fi
	local us
	us=$(awk -v t="$sys" -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.0f", t / hz / n * 1e6 }')
	printf '%-13s %6d/s  registrations %6d ok %6d failed %5d  retrans %5d  wall %5.1fs  cpu: system %6ss (%4s us/reg) others %5ss sipp %5ss  %s\n' \
		"$s" "$rate" "$n" "$ok" "$fail" "$retr" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
		"$(ticks_to_s "$sys")" "$us" "$(ticks_to_s "$all")" "$sipp_cpu" "$verdict"
	if [ "$verdict" = clean ]; then
		clean[$s]=$rate
		echo "$s $rate $us" >>"$work/cpu-per-reg"
	else
		dirty[$s]=$rate
		why[$s]="failed $fail, retrans $retr"
		[ "$fail" -gt 0 ] && why[$s]="${why[$s]}; $(failure_kinds "$csv")"
		active=${active/ $s / }
	fi
}

step_all registrations/s

echo
echo "system         clean up to  first dirty (why)                      ratio            CPU/registration (steps both were clean)"
for s in $systems; do
	ref=kamailio
	[[ "$s" == *-auth ]] && ref=kamailio-auth
	c=${clean[$s]:-0}
	k=${clean[$ref]:-0}
	d=${dirty[$s]:-"none (top of RATES)"}
	[ -n "${why[$s]:-}" ] && d="$d (${why[$s]})"
	ratio="-"
	[ "$k" -gt 0 ] && [ "$s" != "$ref" ] && ratio=$(awk -v a="$c" -v b="$k" 'BEGIN { printf "%.2fx %s", a / b, "'"$ref"'" }')
	cpu=$(awk -v s="$s" -v ref="$ref" '
		$1 == ref { k[$2] = $3 } $1 == s { m[$2] = $3 }
		END { for (r in m) if (r in k) { a += m[r]; b += k[r]; n++ }
		      if (n && s != ref) printf "%.0f us vs %.0f us (%.1fx, %d steps)", a / n, b / n, (a / n) / (b / n), n
		      else if (n) printf "%.0f us", a / n }' "$work/cpu-per-reg" 2>/dev/null)
	printf '%-14s %6s/s     %-38s %-16s %s\n' "$s" "$c" "$d" "$ratio" "$cpu"
done
echo "(clean: at most 0.1% failed and no retransmission; sipp ran on the same cores)"
for s in $systems; do
	case $s in pbx*) ;; *) continue ;; esac
	n=$(grep -cE "level=(ERROR|WARN)" "$work/$s.log" || true)
	[ "$n" -gt 0 ] && echo "$s logged $n warnings/errors, first: $(grep -m1 -E 'level=(ERROR|WARN)' "$work/$s.log" | cut -c1-200)"
done
exit 0

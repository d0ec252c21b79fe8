#!/usr/bin/env bash
# Measures pbxkit's media relay and rtpengine (userspace forwarding: no kernel module) with the
# same load: bench/rtp-compare.sh [CALLS] [SECONDS]
# Needs rtpengine (apt-get install -y rtpengine-daemon). Each relay runs in a process of its
# own; the generator is the same for both. See docs/benchmarks.md.
set -euo pipefail
calls=${1:-1000}
seconds=${2:-20}
cd "$(dirname "$0")/.."
go build -o /tmp/rtp-load ./bench/rtp-load

echo "== pbxkit media.Relay, $calls calls, $seconds s"
/tmp/rtp-load -calls "$calls" -seconds "$seconds"

command -v rtpengine >/dev/null || { echo "rtpengine not installed: skipped"; exit 0; }
echo "== rtpengine $(rtpengine --version 2>&1 | awk '{print $2}'), userspace forwarding, $calls calls, $seconds s"
pidfile=$(mktemp)
rtpengine --foreground --log-stderr --log-level=4 --table=-1 --interface=127.0.0.1 \
	--listen-ng=127.0.0.1:2223 --port-min=30000 --port-max=39999 --num-threads="$(nproc)" \
	--pidfile="$pidfile" 2>/tmp/rtpengine.log &
trap 'kill %1 2>/dev/null; rm -f "$pidfile"' EXIT
for _ in $(seq 50); do [ -s "$pidfile" ] && break; sleep 0.1; done
/tmp/rtp-load -calls "$calls" -seconds "$seconds" -ng 127.0.0.1:2223 -ng-pid "$(cat "$pidfile")"

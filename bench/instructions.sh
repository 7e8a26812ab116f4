#!/usr/bin/env bash
# Benchmark (not a test): user-space instructions per request of the whole proxy (Palisade + CRS, the real
# socket path: hyper, the pipeline, the WAF, the upstream call), counted by valgrind's callgrind while wrk sends
# the shared workloads. On a machine whose req/s drift by 20-30% between runs this is the figure that tells two
# builds apart: it does not depend on the machine's load. Kernel time (syscalls, loopback TCP) is not counted.
# Usage: bench/instructions.sh [--duration D] BIN [BIN...]   (needs valgrind, nginx, wrk)
#   WORKLOADS="get-root get-query post-json" (default), POLICY=dir (default bench/policy-crs)
#   CACHE=1: simulate the caches as well (slower) and add L1 and last-level misses per request: a layout
#   change shows there, not in instructions.
# Prints one row per workload and binary: requests sent, instructions per request.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WRK_DIR=${WRK_DIR:-$ROOT/../shared/bench/wrk}
DURATION=15s
BINS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) BINS+=("$1") ;;
  esac
  shift
done
[ ${#BINS[@]} -gt 0 ] || { echo "usage: $0 [--duration D] BIN [BIN...]" >&2; exit 2; }
for t in valgrind callgrind_control callgrind_annotate wrk nginx curl; do
  command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }
done
OFF=${PORT_OFFSET:-30000}
UP=127.0.0.1:$((8081 + OFF)) PAL=127.0.0.1:$((8091 + OFF)) ADMIN=127.0.0.1:$((9991 + OFF))
RUN=$(mktemp -d /tmp/palisade-instr.XXXXXX)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
start_upstream "$RUN" "$UP"
SIM=()
if [ "${CACHE:-0}" = 1 ]; then
  SIM=(--cache-sim=yes)
  printf '| workload | binary | requests | instructions per request | L1 misses | LL misses |\n|---|---|---:|---:|---:|---:|\n'
else
  printf '| workload | binary | requests | instructions per request |\n|---|---|---:|---:|\n'
fi
for w in ${WORKLOADS:-get-root get-query post-json}; do
  for bin in "${BINS[@]}"; do
    out=$RUN/cg.$w.$(basename "$bin")
    # Counting starts only once the proxy has served a warm-up run (rules loaded, caches built).
    valgrind --tool=callgrind "${SIM[@]}" --instr-atstart=no --callgrind-out-file="$out" "$bin" serve \
      --policy "${POLICY:-$ROOT/bench/policy-crs}" --listen "$PAL" --admin "$ADMIN" --upstream "$UP" \
      > "$RUN/palisade.log" 2>&1 &
    vp=$!
    PIDS+=($vp)
    for _ in $(seq 300); do curl -s -o /dev/null "http://$PAL/" -H 'Host: shop.example.com' && break; sleep 0.5; done
    (cd "$WRK_DIR" && timeout 120 wrk -t1 -c4 -d3s -s $w.lua "http://$PAL/" >/dev/null)
    callgrind_control -i on $vp >/dev/null 2>&1
    (cd "$WRK_DIR" && timeout 300 wrk -t1 -c4 -d"$DURATION" -s $w.lua "http://$PAL/" > "$RUN/wrk.out")
    callgrind_control -i off $vp >/dev/null 2>&1
    callgrind_control -d $vp >/dev/null 2>&1
    kill $vp 2>/dev/null || true
    wait $vp 2>/dev/null || true
    n=$(awk '/requests in/ {print $1}' "$RUN/wrk.out")
    # The dump holds the counted part (the file named without a suffix is the empty start-up part).
    f=$(ls -S "$out"* | head -1)
    # Events: Ir [Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw] with the cache simulation.
    read -r -a ev < <(callgrind_annotate --show-percs=no "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t {gsub(",", ""); t = 1; print}')
    if [ ${#SIM[@]} -gt 0 ]; then
      printf '| %s | %s | %s | %s | %s | %s |\n' "$w" "$bin" "$n" "$(( ev[0] / n ))" \
        "$(( (ev[3] + ev[4] + ev[5]) / n ))" "$(( (ev[6] + ev[7] + ev[8]) / n ))"
    else
      printf '| %s | %s | %s | %s |\n' "$w" "$bin" "$n" "$(( ev[0] / n ))"
    fi
  done
done
rm -rf "$RUN"

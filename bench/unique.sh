#!/usr/bin/env bash
# Benchmark (not a test): Palisade + CRS on the shared workloads as they are (every request the same, as wrk sends
# them) and with every request made unique (bench/wrk/unique.lua: new cookie, User-Agent, query and JSON values).
# The engine remembers prefilter scans of recent short values per thread; this shows what that memory buys on
# repeated values and what Palisade costs when nothing repeats. Prints req/s and the server's CPU time per request
# (from /proc, robust to wrk's own noise), medians over the reps, alternating the two variants.
# Usage: bench/unique.sh [--reps N] [--duration D]   (PALISADE_BIN=path: measure that binary instead of building;
#   UNIQUE_DEBUG=1 in a wrk run with bench/wrk/unique.lua prints the first requests it builds)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WRK_DIR=${WRK_DIR:-$ROOT/../shared/bench/wrk}
REPS=3 DURATION=5s
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
for t in wrk nginx taskset; do command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }; done
BIN=${PALISADE_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release -p palisade --manifest-path "$ROOT/Cargo.toml"
  BIN=$ROOT/target/release/palisade
fi
OFF=${PORT_OFFSET:-20000}
UP=127.0.0.1:$((8081 + OFF)) PAL=127.0.0.1:$((8091 + OFF)) ADMIN=127.0.0.1:$((9991 + OFF))
RUN=$(mktemp -d /tmp/palisade-unique.XXXXXX)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
start_upstream "$RUN" "$UP" taskset -c 0
taskset -c 0 "$BIN" serve --policy "$ROOT/bench/policy-crs" --listen "$PAL" \
  --admin "$ADMIN" --upstream "$UP" > "$RUN/palisade.log" 2>&1 & PIDS+=($!)
PAL_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://$PAL/" -H 'Host: shop.example.com' && break; sleep 0.2; done
cpu() { awk '{print $14 + $15}' "/proc/$PAL_PID/stat"; }
TCK=$(getconf CLK_TCK)
printf 'workload\tvariant\trep\trps\tcpu_us_per_req\tnon2xx\n' > "$RUN/raw.tsv"
for r in $(seq "$REPS"); do
  for w in get-root get-query post-json; do
    for v in same unique; do
      script=$w.lua; [ $v = unique ] && script=$ROOT/bench/wrk/unique.lua
      c0=$(cpu)
      out=$(cd "$WRK_DIR" && WORKLOAD=$w.lua taskset -c 1 wrk -t1 -c32 -d"$DURATION" -s "$script" "http://$PAL/")
      c1=$(cpu)
      n=$(awk '/requests in/ {print $1}' <<<"$out")
      rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
      bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); bad=${bad:-0}
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' $w $v $r "$rps" $(( (c1 - c0) * 1000000 / TCK / n )) "$bad" >> "$RUN/raw.tsv"
      echo "rep $r $w $v: $rps req/s" >&2
    done
  done
done
python3 - "$RUN/raw.tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("| workload | req/s, same values | req/s, unique values | CPU µs/req, same | CPU µs/req, unique | non-2xx |")
print("|---|---:|---:|---:|---:|---:|")
for w in dict.fromkeys(r["workload"] for r in rows):
    m = lambda v, k: statistics.median(float(r[k]) for r in rows if r["workload"] == w and r["variant"] == v)
    bad = sum(int(r["non2xx"]) for r in rows if r["workload"] == w)
    print(f"| {w} | {m('same','rps'):,.0f} | {m('unique','rps'):,.0f} | {m('same','cpu_us_per_req'):.0f} | {m('unique','cpu_us_per_req'):.0f} | {bad} |")
PY
echo "raw: $RUN/raw.tsv" >&2

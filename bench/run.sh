#!/usr/bin/env bash
# Benchmark (not a test): Palisade against nginx (plain proxy) and Apache +
# ModSecurity + CRS, in one run, on loopback, with ../shared/bench/run-peers.sh.
# Rows added:
#   palisade-empty  the proxy with an empty pipeline (WAF off)   -> issue 2 target: >= 0.90x nginx
#   palisade-crs    CRS v4 at PL1, anomaly threshold 5, enforce  -> issue 3 targets: >= 0.70x nginx, >= 3x ModSecurity
#   palisade-crs-pgo  (with --pgo) the same, built by bench/pgo.sh with a profile from its own training traffic
# Usage: bench/run.sh [--pgo] [--install] [run-peers options, e.g. --reps 1 --duration 5s]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS:-$ROOT/../shared/bench/run-peers.sh}
[ -x "$PEERS" ] || [ -f "$PEERS" ] || { echo "no peer bench script at $PEERS" >&2; exit 1; }
PGO=0
ARGS=()
for a in "$@"; do
  if [ "$a" = --pgo ]; then PGO=1; else ARGS+=("$a"); fi
done
cargo build --release -p palisade --manifest-path "$ROOT/Cargo.toml"
BIN=$ROOT/target/release/palisade
OFF=${PORT_OFFSET:-0}
UP=127.0.0.1:$((8081 + OFF))
ROWS=(
  --add "palisade-empty|$((8090 + OFF))|proxy|$BIN serve --policy $ROOT/bench/policy-empty --listen 127.0.0.1:$((8090 + OFF)) --admin 127.0.0.1:$((9990 + OFF)) --upstream $UP"
  --add "palisade-crs|$((8091 + OFF))|waf|$BIN serve --policy $ROOT/bench/policy-crs --listen 127.0.0.1:$((8091 + OFF)) --admin 127.0.0.1:$((9991 + OFF)) --upstream $UP"
)
if [ "$PGO" = 1 ]; then
  PGO_BIN=$(bash "$ROOT/bench/pgo.sh")
  [ -x "$PGO_BIN" ] || { echo "bench/pgo.sh gave no binary" >&2; exit 1; }
  ROWS+=(--add "palisade-crs-pgo|$((8092 + OFF))|waf|$PGO_BIN serve --policy $ROOT/bench/policy-crs --listen 127.0.0.1:$((8092 + OFF)) --admin 127.0.0.1:$((9992 + OFF)) --upstream $UP")
fi
exec bash "$PEERS" "${ARGS[@]}" "${ROWS[@]}"

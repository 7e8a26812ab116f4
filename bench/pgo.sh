#!/usr/bin/env bash
# Profile-guided release build (a build step, not a test). Builds Palisade instrumented, sends training traffic
# through the real proxy, merges the profile, and builds again with it. The training is the CRS regression
# suite (`palisade crs-test`: about 5,000 requests, mostly attacks) and bench/pgo/train.lua (a mix of benign
# requests and a few attacks, unlike the benchmark's own requests) against bench/policy-crs. Measured with
# bench/run.sh --pgo; see the README's "Profile-guided build".
# Usage: bench/pgo.sh [--duration D]   (progress on stderr; the binary's path alone on stdout)
#   Needs nginx, wrk and curl (as the benchmark does) and rustup's llvm-tools component (added when missing).
#   PGO_DIR (default target/pgo) holds both builds' target directories, the profile and the binary.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CRS=${CRS:-$ROOT/../shared/crs}
OUT=${PGO_DIR:-$ROOT/target/pgo}
DURATION=10s
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
for t in cargo rustc rustup nginx wrk curl; do
  command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }
done
[ -d "$CRS/rules" ] || { echo "no CRS at $CRS (set CRS=...)" >&2; exit 1; }
profdata() { find "$(rustc --print sysroot)/lib/rustlib" -name llvm-profdata -type f 2>/dev/null | head -1; }
if [ -z "$(profdata)" ]; then
  echo "[pgo] adding rustup's llvm-tools component (llvm-profdata)" >&2
  rustup component add llvm-tools >&2
fi
PROFDATA=$(profdata)
[ -n "$PROFDATA" ] || { echo "llvm-profdata not found after 'rustup component add llvm-tools'" >&2; exit 1; }

mkdir -p "$OUT"
rm -rf "$OUT/raw"
mkdir -p "$OUT/raw"
echo "[pgo 1/4] instrumented build ($OUT/gen-target)" >&2
RUSTFLAGS="-Cprofile-generate=$OUT/raw" CARGO_TARGET_DIR="$OUT/gen-target" \
  cargo build --release -p palisade --manifest-path "$ROOT/Cargo.toml" >&2
GEN=$OUT/gen-target/release/palisade
# Only the proxy's own runs are merged (build scripts of the instrumented build write profiles too).
export LLVM_PROFILE_FILE="$OUT/raw/palisade-%p-%m.profraw"

echo "[pgo 2/4] training: the CRS regression suite" >&2
timeout 1200 "$GEN" crs-test --crs "$CRS" 2>/dev/null | grep -E '^[0-9]+ passed' >&2 \
  || { echo "crs-test failed" >&2; exit 1; }

echo "[pgo 2/4] training: bench/pgo/train.lua for $DURATION" >&2
RUN=$(mktemp -d /tmp/palisade-pgo.XXXXXX)
OFF=${PORT_OFFSET:-20000}
UP=127.0.0.1:$((8081 + OFF)) PAL=127.0.0.1:$((8091 + OFF)) ADMIN=127.0.0.1:$((9991 + OFF))
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
start_upstream "$RUN" "$UP"
"$GEN" serve --policy "$ROOT/bench/policy-crs" --listen "$PAL" --admin "$ADMIN" --upstream "$UP" \
  > "$RUN/palisade.log" 2>&1 &
pal=$!
PIDS+=($pal)
for _ in $(seq 100); do curl -s -o /dev/null "http://$PAL/" -H 'Host: app.example.org' && break; sleep 0.3; done
(cd "$ROOT/bench/pgo" && timeout 300 wrk -t1 -c4 -d"$DURATION" -s train.lua "http://$PAL/") | grep -E 'requests in' >&2
# A clean stop writes the profile.
kill -TERM $pal
wait $pal || true
cleanup
PIDS=()
rm -rf "$RUN"

echo "[pgo 3/4] merging the profiles" >&2
rm -f "$OUT"/palisade-*.profdata
"$PROFDATA" merge -o "$OUT/merged.profdata" "$OUT/raw"/palisade-*.profraw >&2
# Named by its content: cargo rebuilds when the flags change, not when a file they name does.
PROFILE=$OUT/palisade-$(sha256sum "$OUT/merged.profdata" | cut -c1-16).profdata
mv "$OUT/merged.profdata" "$PROFILE"

echo "[pgo 4/4] optimized build ($OUT/use-target)" >&2
RUSTFLAGS="-Cprofile-use=$PROFILE" CARGO_TARGET_DIR="$OUT/use-target" \
  cargo build --release -p palisade --manifest-path "$ROOT/Cargo.toml" >&2
cp "$OUT/use-target/release/palisade" "$OUT/palisade"
echo "$OUT/palisade"

#!/usr/bin/env bash
# The project's test command (README "Run the tests"; CI runs it via .ci/run).
# Format and lint gates, every unit and integration test, then the OWASP CRS
# regression suite through the real proxy when the CRS checkout is present.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

CRS=${PALISADE_CRS:-../shared/crs}
if [ -d "$CRS/tests/regression/tests" ]; then
  echo "== CRS regression suite ($CRS)"
  cargo build --release -p palisade
  # The pass-rate floor is the level reached so far; see README "Conformance".
  ./target/release/palisade crs-test --crs "$CRS" --min-pass-rate "${CRS_MIN_PASS_RATE:-0.0}"
else
  echo "== CRS regression suite skipped: no CRS checkout at $CRS (set PALISADE_CRS)"
fi

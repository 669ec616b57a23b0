#!/usr/bin/env bash
# `make soak`: the proofs of issue 7 at full size. The same tests as
# `make test` runs with quick sizes, with EDGEHOOK_SOAK=1: a flood of 10,000
# unsigned 1 MiB requests, storms of 1,000 concurrent copies for three
# providers, an hour of consumer outage, a 20 s stream from 16 clients before the kill -9,
# and a target down for three minutes. Expect about 70 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/tools.sh)"
bash scripts/build-worker.sh
export EDGEHOOK_SOAK=1
log=${SOAK_LOG:-target/soak.log}
mkdir -p "$(dirname "$log")"
echo "soak: full output in $log"
status=0
cargo test --locked -p edgehook-e2e --no-fail-fast \
  --test flood --test hardening --test outage --test durability --test hostile \
  -- --test-threads 8 --nocapture > "$log" 2>&1 || status=$?
grep -E '^(test |flood:|storm:|crash mid-stream:|consumer outage:|hostile input:|test result)|panicked' "$log" || true
exit "$status"

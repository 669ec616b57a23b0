#!/usr/bin/env bash
# Builds the Worker into build/ (wrangler's [build] command and `make build`).
# With EDGEHOOK_SKIP_BUILD=1 and an existing build, it does nothing: the test
# harness builds once and starts wrangler many times.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${EDGEHOOK_SKIP_BUILD:-}" = 1 ] && [ -f build/worker/shim.mjs ]; then
  exit 0
fi
eval "$(bash scripts/tools.sh)"
exec "$WORKER_BUILD" --release --out-dir ../build worker

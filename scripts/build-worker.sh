#!/usr/bin/env bash
# Builds the Worker into build/ (wrangler's [build] command and `make build`).
# With EDGEHOOK_SKIP_BUILD=1 and an existing build, it does nothing: the test
# harness builds once and starts wrangler many times. An up-to-date build is
# also kept, so wrangler's start-up and file-watch builds cost nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f build/worker/shim.mjs ]; then
  if [ "${EDGEHOOK_SKIP_BUILD:-}" = 1 ]; then exit 0; fi
  # Up to date: nothing the Wasm is built from is newer than the build.
  if [ -z "$(find core worker docs/openapi.json console Cargo.toml Cargo.lock -newer build/worker/shim.mjs -print -quit)" ]; then
    exit 0
  fi
fi
eval "$(bash scripts/tools.sh)"
exec "$WORKER_BUILD" --release --out-dir ../build worker

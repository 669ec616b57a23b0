#!/usr/bin/env bash
# Builds the Worker into build/ (wrangler's [build] command and `make build`).
# With EDGEHOOK_SKIP_BUILD=1 and an existing build, it only refreshes the
# static files: the test harness builds once and starts wrangler many times.
# An up-to-date Wasm build is also kept, so wrangler's start-up and
# file-watch builds cost nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# The console and the OpenAPI document, which the Worker does not carry in
# its Wasm: build/static.mjs holds them for the entry module to serve, with
# the headers of console/_headers (scripts/static-assets.mjs says why they
# are not Workers static assets). Written on every build: it costs nothing.
mkdir -p build
rm -rf build/assets
node scripts/static-assets.mjs
# The entry module (wrangler.toml's `main`): the Rust build's exports, with
# the Trigger class RPC needs declared around the Rust object.
cp worker/entry.mjs build/entry.mjs
if [ -f build/worker/shim.mjs ]; then
  if [ "${EDGEHOOK_SKIP_BUILD:-}" = 1 ]; then exit 0; fi
  # Up to date: nothing the Wasm is built from is newer than the build.
  if [ -z "$(find core worker Cargo.toml Cargo.lock -newer build/worker/shim.mjs -print -quit)" ]; then
    exit 0
  fi
fi
eval "$(bash scripts/tools.sh)"
"$WORKER_BUILD" --profile wasm --out-dir ../build worker
# worker-build keeps the Wasm's name section; scripts/strip-wasm.sh drops
# it, unless EDGEHOOK_WASM_NAMES=1 keeps it for a local profile.
if [ "${EDGEHOOK_WASM_NAMES:-}" != 1 ]; then
  bash scripts/strip-wasm.sh build/index_bg.wasm
fi

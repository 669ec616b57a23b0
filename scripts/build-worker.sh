#!/usr/bin/env bash
# Builds the Worker into build/ (wrangler's [build] command and `make build`).
# With EDGEHOOK_SKIP_BUILD=1 and an existing build, it only refreshes the
# static assets: the test harness builds once and starts wrangler many times.
# An up-to-date Wasm build is also kept, so wrangler's start-up and
# file-watch builds cost nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# The static files the Worker does not carry in its Wasm, served by Workers
# static assets (wrangler.toml's [assets]) before the Worker runs: the
# console at /console (its HTML as console.html, so /console answers without
# a redirect) and the OpenAPI document at /api/openapi.json, with the headers
# of console/_headers. Copied on every build: it costs nothing.
rm -rf build/assets
mkdir -p build/assets/console build/assets/api
cp console/index.html build/assets/console.html
cp console/app.js console/app.css build/assets/console/
cp console/_headers build/assets/_headers
cp docs/openapi.json build/assets/api/openapi.json
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

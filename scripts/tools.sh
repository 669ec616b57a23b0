#!/usr/bin/env bash
# Installs what building and running the Worker needs, once, and prints the
# environment that points worker-build at it. Safe to run repeatedly.
#
#   eval "$(bash scripts/tools.sh)"
#
# Cargo tools go to $EDGEHOOK_TOOLS (default ~/.cache/edgehook/tools), one
# directory per version, so fresh clones reuse them; npm packages come from
# package-lock.json with `npm ci`. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools=${EDGEHOOK_TOOLS:-$HOME/.cache/edgehook/tools}
worker_build_version=0.8.7

say() { echo "edgehook: $*" >&2; }

# The wasm-bindgen CLI must match the library in Cargo.lock exactly.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if [ -z "$bindgen_version" ]; then
  say "cannot find wasm-bindgen in Cargo.lock"; exit 1
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown >&2
fi

wb_root="$tools/worker-build-$worker_build_version"
bg_root="$tools/wasm-bindgen-cli-$bindgen_version"
pids=()
if [ ! -x "$wb_root/bin/worker-build" ]; then
  say "installing worker-build $worker_build_version (first run only, several minutes)"
  cargo install --quiet --root "$wb_root" worker-build --version "$worker_build_version" >&2 &
  pids+=($!)
fi
if [ ! -x "$bg_root/bin/wasm-bindgen" ]; then
  say "installing wasm-bindgen-cli $bindgen_version (first run only, several minutes)"
  cargo install --quiet --root "$bg_root" wasm-bindgen-cli --version "$bindgen_version" >&2 &
  pids+=($!)
fi
for p in "${pids[@]}"; do wait "$p"; done

if [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/.bin/wasm-opt ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

cat <<ENV
export WORKER_BUILD="$wb_root/bin/worker-build"
export WASM_BINDGEN_BIN="$bg_root/bin/wasm-bindgen"
export WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$root/node_modules/.bin/esbuild"
export WRANGLER="$root/node_modules/.bin/wrangler"
export WRANGLER_SEND_METRICS=false
export WRANGLER_SEND_ERROR_REPORTS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
ENV

#!/usr/bin/env bash
# `make bench`: builds what it measures, then runs bench/ (see its module docs).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/tools.sh)"
bash scripts/build-worker.sh
# The Rust floor (bench/floor-rust), built and stripped as the Worker is,
# with the class its RPC needs beside it.
"$WORKER_BUILD" --profile wasm --out-dir ../../target/floor-rust bench/floor-rust
bash scripts/strip-wasm.sh target/floor-rust/index_bg.wasm
cp bench/floor-rust/entry.mjs target/floor-rust/entry.mjs
cargo build --release --locked -p backfill -p edgehook-bench
exec target/release/edgehook-bench

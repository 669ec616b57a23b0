#!/usr/bin/env bash
# `make bench`: builds what it measures, then runs bench/ (see its module docs).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/tools.sh)"
bash scripts/build-worker.sh
cargo build --release --locked -p backfill -p edgehook-bench
exec target/release/edgehook-bench

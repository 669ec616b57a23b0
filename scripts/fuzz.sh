#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target for FUZZ_SECONDS (default 60) each,
# starting from the seeds in fuzz/seeds/ (the test vectors; FUZZ_TARGETS to
# pick some). Needs the
# nightly toolchain; installs cargo-fuzz into the tools cache on first use.
# Prints each target's executions and exits non-zero on any finding
# (the crashing input is left under fuzz/artifacts/).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
tools=${EDGEHOOK_TOOLS:-$HOME/.cache/edgehook/tools}
version=0.13.1
root="$tools/cargo-fuzz-$version"
if [ ! -x "$root/bin/cargo-fuzz" ]; then
  echo "edgehook: installing cargo-fuzz $version (first run only)" >&2
  cargo install --quiet --root "$root" cargo-fuzz --version "$version" >&2
fi
export PATH="$root/bin:$PATH"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal >&2
# FUZZ_TARGETS="a b" runs only those.
read -r -a targets <<< "${FUZZ_TARGETS:-signature_headers ingest_screen trigger_config api_query route_filter}"
summary=()
for t in "${targets[@]}"; do
  corpus=$(mktemp -d)
  log=$(mktemp)
  echo "== fuzz $t for ${seconds}s"
  status=0
  (cd fuzz && cargo +nightly fuzz run "$t" "$corpus" "seeds/$t" -- \
      -max_total_time="$seconds" -print_final_stats=1) > "$log" 2>&1 || status=$?
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log"
    summary+=("$t: FAILED after $runs executions (see fuzz/artifacts/$t)")
  else
    summary+=("$t: $runs executions, no findings")
  fi
  rm -rf "$corpus" "$log"
done
printf '\n== fuzz summary\n'
printf '%s\n' "${summary[@]}"
! printf '%s\n' "${summary[@]}" | grep -q FAILED

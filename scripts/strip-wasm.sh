#!/usr/bin/env bash
# Drops a worker-build Wasm's name section (function names for stack traces:
# 188 KB raw, 47 KB gzipped of edgehook's upload). A panic still logs its
# message; the names are only worth having in a local profile. The features
# are worker-build's own list, so nothing newer than workerd supports is
# emitted.
#
#   WASM_OPT_BIN=… bash scripts/strip-wasm.sh <file.wasm>
set -euo pipefail
features=(mutable-globals sign-ext nontrapping-float-to-int bulk-memory multivalue reference-types exception-handling)
"$WASM_OPT_BIN" "$1" -o "$1" --strip-debug --strip-producers "${features[@]/#/--enable-}"

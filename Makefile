# edgehook: `make dev` runs the local edge, `make test` runs every test.
SHELL := bash
.DEFAULT_GOAL := help
export PORT ?= 8787

.PHONY: help dev test soak fuzz bench build tools check fmt clean

help:
	@echo "make dev    run the local edge on http://127.0.0.1:$$PORT (installs what is missing)"
	@echo "make test   run every test (unit, build, deploy dry-run, end-to-end)"
	@echo "make soak   the end-to-end suites at full size (10,000-request flood, 1,000-copy storms, an hour of consumer outage)"
	@echo "make fuzz   run every cargo-fuzz target for FUZZ_SECONDS (default 60) each"
	@echo "make bench  measure ingest, Wasm size, ledger growth and backfill (ratios in one run)"
	@echo "make build  build the Worker to build/"
	@echo "make fmt    format the code"

dev:
	@bash scripts/dev.sh

test:
	@bash scripts/test.sh

soak:
	@bash scripts/soak.sh

fuzz:
	@bash scripts/fuzz.sh

bench:
	@bash scripts/bench.sh

build:
	@bash scripts/build-worker.sh

tools:
	@bash scripts/tools.sh > /dev/null

fmt:
	cargo fmt --all

clean:
	rm -rf build target .wrangler

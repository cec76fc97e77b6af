# KalamDB: `make run` starts the server, `make test` runs every test.
# Both first install what a fresh Debian machine lacks (clang/libclang for librocksdb-sys).

CARGO_TARGET_DIR ?= $(HOME)/.cache/kalamdb-target
export CARGO_TARGET_DIR
CARGO ?= cargo
SERVER_BIN_DEBUG := $(CARGO_TARGET_DIR)/debug/kalamdb-server
SERVER_BIN_RELEASE := $(CARGO_TARGET_DIR)/release/kalamdb-server

CYCLES ?= 200
FUZZ_SECONDS ?= 300

.PHONY: run test bench bench-quick crash-test fuzz deps build check fmt clean-data image-check

## Install build prerequisites if missing (apt-get when root, otherwise explain).
deps:
	@./scripts/ensure-deps.sh

## Build in release mode and start the server with backend/server.toml.
run: deps
	$(CARGO) build --release --locked -p kalamdb-server
	$(SERVER_BIN_RELEASE) --config backend/server.toml

## Build (debug) and run every test: unit, property and end-to-end against the real binary.
test: deps
	./scripts/check-alerts.sh
	python3 ./scripts/check-import-circles.py
	$(CARGO) build --locked -p kalamdb-server
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --locked --no-fail-fast; \
	else \
		echo "cargo-nextest not found; using cargo test"; \
		$(CARGO) test --workspace --locked --no-fail-fast; \
	fi

## Benchmarks (docs/BENCHMARKS.md): release server vs raw components vs PostgreSQL 15.
## BENCH_ARGS=--quick for the short run; results in target/bench/results.{md,json}.
BENCH_ARGS ?=
bench: deps
	./scripts/ensure-deps.sh --postgresql
	$(CARGO) build --release --locked -p kalamdb-server -p kalamdb-bench
	$(CARGO_TARGET_DIR)/release/kalamdb-bench --server $(SERVER_BIN_RELEASE) --out target/bench $(BENCH_ARGS)

bench-quick:
	$(MAKE) bench BENCH_ARGS=--quick

## Long crash-recovery run: kill -9 at random moments and at each flush step, CYCLES times.
crash-test: deps
	$(CARGO) build --locked -p kalamdb-server
	KALAMDB_CRASH_CYCLES=$(CYCLES) $(CARGO) nextest run -p kalamdb-tests --locked \
		-E 'test(/crash_recovery/)' --no-capture

## Coverage-guided fuzzing of the statement parser and the row codec (cargo-fuzz, libFuzzer).
## Separate target dir: sanitizer flags would otherwise invalidate the main build cache.
fuzz: deps
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && CARGO_TARGET_DIR=$(HOME)/.cache/kalamdb-fuzz-target RUSTC_BOOTSTRAP=1 \
		$(CARGO) fuzz run parse_statement -- -max_total_time=$(FUZZ_SECONDS)
	cd fuzz && CARGO_TARGET_DIR=$(HOME)/.cache/kalamdb-fuzz-target RUSTC_BOOTSTRAP=1 \
		$(CARGO) fuzz run row_codec -- -max_total_time=$(FUZZ_SECONDS)

build: deps
	$(CARGO) build --locked --workspace --all-targets

check:
	$(CARGO) check --locked --workspace --all-targets

fmt:
	$(CARGO) fmt --all

## The Docker image built with podman and checked as users run it (docker/image-check.sh):
## a release build inside the image, so not part of `make test`.
image-check:
	docker/image-check.sh

clean-data:
	rm -rf ./data

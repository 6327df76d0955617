# The two commands the README starts with:
#   make run    build flowhost and the example flow, then run flows/rpa1.wasm on the embedded default
#   make test   the whole test suite (real PostgreSQL on 127.0.0.1:5432, real SQLite, real components)
#
# Native code builds into target/ (one release build shared by `run` and `test`); guest
# components build into target/guests so tests can build them while cargo holds target/.

CARGO       ?= cargo
WASM_TARGET := wasm32-wasip2
GUEST_DIR   := target/guests
GUEST_OUT   := $(GUEST_DIR)/$(WASM_TARGET)/release

.PHONY: run test deps wasm-target flows build lint bench bench-scale bench-migrate bench-mssql fuzz

run: flows build
	./target/release/flowhost run flows/rpa1.wasm

test: deps
	$(CARGO) test --release --workspace

# What a fresh machine lacks: the wasm target, and libclang for pg_query's build script
# (PostgreSQL's parser, compiled from C; bindgen needs libclang to read its header).
deps: wasm-target
	@ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so >/dev/null 2>&1 || { \
	  echo "libclang is missing (pg_query's build needs it); installing Debian's libclang-dev"; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get install -y -q libclang-dev >/dev/null 2>&1 || \
	  { $$sudo apt-get update -q >/dev/null && $$sudo apt-get install -y -q libclang-dev >/dev/null; } || { \
	    echo "could not install libclang-dev: install libclang (Debian/Ubuntu: apt-get install libclang-dev) and retry"; exit 1; }; }

# rustup target add is idempotent, but skip the network round trip when it is there.
wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

flows: deps
	CARGO_TARGET_DIR=$(GUEST_DIR) $(CARGO) build --release --target $(WASM_TARGET) -p rpa1
	cp $(GUEST_OUT)/rpa1.wasm flows/rpa1.wasm

build: deps
	$(CARGO) build --release --workspace

# flowhost vs native sqlx on the same work, printed as tables (needs PostgreSQL, like test):
# in-process costs (host/examples/bench.rs), then whole rpa1 runs against a native sqlx program
# and the Python/SQLAlchemy system, whose venv is set up here (host/examples/rpa1_bench.rs).
BENCH_VENV := target/bench-venv
bench: flows
	$(CARGO) build --release -p flowhost --bin flowhost -p rpa1-native
	RUST_BACKTRACE=0 $(CARGO) run --release -p flowhost --example bench
	@[ -x $(BENCH_VENV)/bin/python ] || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q -r bench/python/requirements.txt
	RUST_BACKTRACE=0 $(CARGO) run --release -p flowhost --example rpa1_bench
	RUST_BACKTRACE=0 $(CARGO) run --release -p flowhost --example scale_bench

# Scale (issue 9, items 4-6; needs PostgreSQL and psql): streaming 1M rows against sqlx fetch with
# each peer's peak RSS, execute-batch of 100k rows against psql \copy, and 200 concurrent runs
# on a pool of 10 (host/examples/scale_bench.rs).
bench-scale: deps
	RUST_BACKTRACE=0 $(CARGO) run --release -p flowhost --example scale_bench

# `flowhost migrate` (the release binary, whole processes) vs psql applying the same 100 files,
# and migrate validate/info over 1,000-10,000 files; prints tables (needs PostgreSQL and psql).
bench-migrate: deps
	$(CARGO) build --release -p flowhost --bin flowhost
	RUST_BACKTRACE=0 $(CARGO) run --release -p flowhost --example migrate_bench

# SQL Server execute-batch: multi-row INSERT vs tiberius bulk load, on FLOWHOST_TEST_MSSQL_URL.
bench-mssql: deps
	RUST_BACKTRACE=0 $(CARGO) run --release -p flowhost --example mssql_batch_bench

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# Fuzz every parser for FUZZ_SECONDS each (cargo-fuzz on stable through RUSTC_BOOTSTRAP=1; see
# fuzz/README.md). Not part of `test` or CI: the first build alone takes 10+ minutes.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := rewrite classify split tsql_differential manifest dotenv connection_string migration_name
fuzz:
	@command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked"; exit 1; }
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 || exit 1; \
	done

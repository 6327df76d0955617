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

.PHONY: run test wasm-target flows build lint bench bench-migrate

run: flows build
	./target/release/flowhost run flows/rpa1.wasm

test: wasm-target
	$(CARGO) test --release --workspace

# rustup target add is idempotent, but skip the network round trip when it is there.
wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

flows: wasm-target
	CARGO_TARGET_DIR=$(GUEST_DIR) $(CARGO) build --release --target $(WASM_TARGET) -p rpa1
	cp $(GUEST_OUT)/rpa1.wasm flows/rpa1.wasm

build:
	$(CARGO) build --release --workspace

# flowhost vs native sqlx on the same work, printed as a table (needs PostgreSQL, like test).
bench: wasm-target
	RUST_BACKTRACE=0 $(CARGO) run --release -p flowhost --example bench

# `flowhost migrate` (the release binary, whole processes) vs psql applying the same 100 files,
# and migrate validate/info over 1,000-10,000 files; prints tables (needs PostgreSQL and psql).
bench-migrate:
	$(CARGO) build --release -p flowhost --bin flowhost
	RUST_BACKTRACE=0 $(CARGO) run --release -p flowhost --example migrate_bench

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

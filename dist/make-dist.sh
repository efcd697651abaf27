#!/usr/bin/env bash
# make dist: static musl binaries, one tarball per architecture (binary,
# conchd link, man pages, completions, systemd unit, docs, licenses), a
# CycloneDX SBOM per architecture and SHA256SUMS, in target/dist/out/.
#
# Reproducible: the same commit gives byte-identical files. Paths are
# remapped out of the binary, the build is --locked, timestamps come from
# the commit (SOURCE_DATE_EPOCH), tar entries are sorted with fixed owners
# and modes, gzip stores no name or time.
#   dist/make-dist.sh [TARGET_DIR]   (default target/dist)
set -euo pipefail
cd "$(dirname "$0")/.."
top="$PWD"
tdir="$(mkdir -p "${1:-target/dist}" && cd "${1:-target/dist}" && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
export CONCH_COMMIT="${CONCH_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  echo "dist: the work tree has uncommitted changes: the artefacts are $CONCH_COMMIT plus them, and will not match a build of $CONCH_COMMIT" >&2
fi
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
# The last matching remap wins: the target dir (inside the tree or not)
# and the registry sources become fixed names.
remap="--remap-path-prefix=$top=/build/conch --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$tdir=/build/target"

targets=(x86_64-unknown-linux-musl)
# aarch64 needs rustup's target and a C cross compiler for ring.
if command -v aarch64-linux-gnu-gcc >/dev/null; then
  targets+=(aarch64-unknown-linux-musl)
else
  echo "dist: no aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu): x86_64 only" >&2
fi

out="$tdir/out"
rm -rf "$out" "$tdir/stage"
mkdir -p "$out" "$tdir/stage"
for t in "${targets[@]}"; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
  case "$t" in
    aarch64-*)
      export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
      export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc ;;
  esac
  RUSTFLAGS="$remap" CARGO_TARGET_DIR="$tdir" cargo build --quiet --release --locked --target "$t"
done

host_bin="$tdir/x86_64-unknown-linux-musl/release/conch"
for t in "${targets[@]}"; do
  arch="${t%%-*}"
  name="conch-$version-$arch-linux-musl"
  s="$tdir/stage/$name"
  mkdir -p "$s/bin" "$s/share/man/man1" "$s/share/man/man8" "$s/share/doc/conch/docs" \
    "$s/share/bash-completion/completions" "$s/share/zsh/site-functions" \
    "$s/share/fish/vendor_completions.d" "$s/lib/systemd/system"
  install -m 755 "$tdir/$t/release/conch" "$s/bin/conch"
  ln -s conch "$s/bin/conchd"
  install -m 644 docs/man/*.1 "$s/share/man/man1/"
  install -m 644 docs/man/*.8 "$s/share/man/man8/"
  # README links into docs/: the same layout keeps the links working.
  install -m 644 LICENSE-MIT LICENSE-APACHE README.md "$s/share/doc/conch/"
  install -m 644 docs/*.md "$s/share/doc/conch/docs/"
  # The scripts are text, the same on every architecture: the host binary
  # writes them.
  "$host_bin" completions bash >"$s/share/bash-completion/completions/conch"
  ln -s conch "$s/share/bash-completion/completions/conchd"
  "$host_bin" completions zsh >"$s/share/zsh/site-functions/_conch"
  "$host_bin" completions fish >"$s/share/fish/vendor_completions.d/conch.fish"
  ln -s conch.fish "$s/share/fish/vendor_completions.d/conchd.fish"
  sed "s|@BINDIR@|/usr/local/bin|" dist/conchd.service >"$s/lib/systemd/system/conchd.service"
  chmod -R u=rwX,go=rX "$s"
  tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --format=gnu -C "$tdir/stage" -cf - "$name" | gzip -9n >"$out/$name.tar.gz"
  python3 dist/sbom.py "$t" >"$out/$name.cdx.json"
done
(cd "$out" && sha256sum -- * >SHA256SUMS)
echo "dist: $out ($(IFS=' '; echo "${targets[*]}"))"
cat "$out/SHA256SUMS"

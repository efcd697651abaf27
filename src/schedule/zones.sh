#!/usr/bin/env bash
# Builds zones.bin from the tzdata release pinned in tzdata.lock, never
# from the build host's /usr/share/zoneinfo.
#   src/schedule/zones.sh          rewrite src/schedule/zones.bin
#   src/schedule/zones.sh --check  fail unless zones.bin matches the pin
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lock="$here/tzdata.lock"
field() { sed -n "s/^$1 = //p" "$lock"; }
iana="$(field iana)" pypi="$(field pypi)" file="$(field file)" sum="$(field sha256)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "$pypi"
echo "$sum  $work/$file" | sha256sum --check --quiet \
  || { echo "zones: $file does not have the sha256 recorded in $lock" >&2; exit 1; }
python3 -m zipfile -e "$work/$file" "$work/x"
zi="$work/x/tzdata/zoneinfo"
got="$(head -1 "$zi/tzdata.zi" | awk '{print $3}')"
[ "$got" = "$iana" ] || { echo "zones: $file holds tzdata $got, $lock says $iana" >&2; exit 1; }
python3 "$here/gen_zones.py" "$zi" >"$work/zones.bin"
if [ "${1:-}" = "--check" ]; then
  cmp -s "$work/zones.bin" "$here/zones.bin" \
    || { echo "zones: src/schedule/zones.bin is not tzdata $iana as pinned (run make zones)" >&2; exit 1; }
  echo "zones: zones.bin is tzdata $iana ($file, sha256 $sum)"
else
  cp "$work/zones.bin" "$here/zones.bin"
fi

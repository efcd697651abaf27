#!/usr/bin/env bash
# Proves the static binary needs nothing from its host: runs it inside an
# empty root (only the binary and /proc) with --version, a cron next in a
# named zone, and one elect round against a throwaway etcd.
# Usage: tests/static.sh path/to/static/conch   (as root: chroot, mount)
set -euo pipefail
bin=$(readlink -f "$1")
[ "$(id -u)" = 0 ] || { echo "static: needs root for chroot" >&2; exit 69; }
if file "$bin" 2>/dev/null | grep -q "dynamically linked"; then
  echo "static: $bin is dynamically linked" >&2; exit 1
fi
if [ -z "${CONCH_STATIC_ETCD:-}" ]; then
  CONCH_STATIC_ETCD=1 exec "$(dirname "$0")/with-etcd.sh" "$0" "$bin"
fi
root=$(mktemp -d /tmp/conch-root.XXXXXX)
cleanup() { umount "$root/proc" 2>/dev/null || true; rm -rf "$root"; }
trap cleanup EXIT
cp "$bin" "$root/conch"
# /proc is all a Linux host always has: the keeper and the reaper read it.
mkdir "$root/proc" && mount -t proc proc "$root/proc"
in_root() { chroot "$root" /conch "$@"; }

echo "== in an empty root: $(ls -A "$root" | tr '\n' ' ')"
in_root --version
got=$(in_root cron next '30 2 * * *' --tz Europe/Berlin --after 2026-10-24T23:00:00Z --count 2)
want=$(printf '2026-10-25T00:30:00Z\t2026-10-25T02:30:00+02:00\n2026-10-26T01:30:00Z\t2026-10-26T02:30:00+01:00')
[ "$got" = "$want" ] || { echo "static: cron next gave:"; echo "$got"; exit 1; }
echo "cron next in Europe/Berlin: ok"
rev=$(in_root --endpoints "$CONCH_ENDPOINTS" -q elect static -- /conch --version)
[ "$rev" = "$(in_root --version)" ] || { echo "static: elect round failed: '$rev'"; exit 1; }
in_root --endpoints "$CONCH_ENDPOINTS" elect static --who >/dev/null && { echo "static: not resigned"; exit 1; }
echo "elect round with a child: ok"
echo "static: $(stat -c %s "$bin") bytes, all checks held"

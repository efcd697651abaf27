#!/usr/bin/env bash
# `make demo`: a throwaway single-node etcd in a temp dir, two candidates
# taking turns on one office, a --who while one holds, then cleanup.
# Usage: tests/demo.sh [path/to/conch]
set -euo pipefail
bin=${1:-target/release/conch}
command -v etcd >/dev/null || { echo "demo: etcd not found (make deps)" >&2; exit 69; }

# Always a throwaway etcd, whatever CONCH_ENDPOINTS the shell has.
if [ -z "${CONCH_DEMO_ETCD:-}" ]; then
  CONCH_DEMO_ETCD=1 exec "$(dirname "$0")/with-etcd.sh" "$0" "$bin"
fi
export CONCH_PREFIX=/demo

# Ready when --who answers (1: vacant) instead of 69 (unreachable).
for _ in $(seq 100); do
  rc=0; "$bin" --dial-timeout 200ms elect demo --who >/dev/null 2>&1 || rc=$?
  [ "$rc" = 1 ] && break
  sleep 0.1
done
echo "== etcd on $CONCH_ENDPOINTS; two candidates for the office 'demo'"
"$bin" elect demo -- sh -c 'echo "[A] leader, CONCH_REV=$CONCH_REV; working 2s"; sleep 2; echo "[A] done"' &
a=$!
# B queues behind A once A holds.
for _ in $(seq 200); do
  "$bin" elect demo --who >/dev/null 2>&1 && break
  sleep 0.05
done
"$bin" elect demo -- sh -c 'echo "[B] leader, CONCH_REV=$CONCH_REV; working 1s"; sleep 1; echo "[B] done"' &
b=$!
sleep 0.5
echo "== conch elect demo --who"
"$bin" elect demo --who
wait "$a" "$b"
echo "== conch elect demo --who (vacant: exit 1)"
rc=0; "$bin" elect demo --who || rc=$?
echo "exit $rc"

#!/usr/bin/env bash
# `make demo`: a throwaway single-node etcd in a temp dir, two candidates
# taking turns on one office, a --who while one holds, then cleanup.
# Usage: tests/demo.sh [path/to/conch]
set -euo pipefail
bin=${1:-target/release/conch}
command -v etcd >/dev/null || { echo "demo: etcd not found (make deps)" >&2; exit 69; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/conch-demo.XXXXXX")
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
cport=$(free_port); pport=$(free_port)
etcd --name demo --data-dir "$dir/data" \
  --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
  --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
  --initial-cluster "demo=http://127.0.0.1:$pport" --log-level error --logger zap >"$dir/etcd.log" 2>&1 &
etcd_pid=$!
cleanup() { kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
export CONCH_ENDPOINTS="127.0.0.1:$cport" CONCH_PREFIX=/demo

# Ready when --who answers (1: vacant) instead of 69 (unreachable).
for _ in $(seq 100); do
  rc=0; "$bin" --dial-timeout 200ms elect demo --who >/dev/null 2>&1 || rc=$?
  [ "$rc" = 1 ] && break
  sleep 0.1
done
echo "== etcd on 127.0.0.1:$cport; two candidates for the office 'demo'"
"$bin" elect demo -- sh -c 'echo "[A] leader, CONCH_REV=$CONCH_REV; working 2s"; sleep 2; echo "[A] done"' &
a=$!
# B queues behind A once A holds.
until "$bin" elect demo --who >/dev/null 2>&1; do sleep 0.05; done
"$bin" elect demo -- sh -c 'echo "[B] leader, CONCH_REV=$CONCH_REV; working 1s"; sleep 1; echo "[B] done"' &
b=$!
sleep 0.5
echo "== conch elect demo --who"
"$bin" elect demo --who
wait "$a" "$b"
echo "== conch elect demo --who (vacant: exit 1)"
rc=0; "$bin" elect demo --who || rc=$?
echo "exit $rc"

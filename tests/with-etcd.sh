#!/usr/bin/env bash
# Runs a command against a throwaway single-node etcd in a temp dir (on
# /dev/shm when there is one), with CONCH_ENDPOINTS pointing at it; removes
# everything afterwards. Usage: tests/with-etcd.sh CMD [ARG...]
set -euo pipefail
command -v etcd >/dev/null || { echo "with-etcd: etcd not found (make deps)" >&2; exit 69; }
root=/tmp; [ -d /dev/shm ] && root=/dev/shm
dir=$(mktemp -d "$root/conch-etcd.XXXXXX")
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
cport=$(free_port); pport=$(free_port)
etcd --name local --data-dir "$dir/data" \
  --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
  --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
  --initial-cluster "local=http://127.0.0.1:$pport" --log-level error --logger zap >"$dir/etcd.log" 2>&1 &
etcd_pid=$!
cleanup() { kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
export CONCH_ENDPOINTS="127.0.0.1:$cport"
for _ in $(seq 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$cport") 2>/dev/null && break
  sleep 0.05
done
"$@"

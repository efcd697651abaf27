#!/usr/bin/env bash
# Runs a command against a throwaway single-node etcd in a temp dir (on
# /dev/shm when there is one), with CONCH_ENDPOINTS pointing at it; removes
# everything afterwards. Usage: tests/with-etcd.sh CMD [ARG...]
set -euo pipefail
command -v etcd >/dev/null || { echo "with-etcd: etcd not found (make deps)" >&2; exit 69; }
root=/tmp; [ -d /dev/shm ] && root=/dev/shm
dir=$(mktemp -d "$root/conch-etcd.XXXXXX")
# Below the kernel's ephemeral range (32768 and up on Linux), where any
# client's outgoing connection could take the port between the check and
# etcd's bind.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
etcd_pid=
cleanup() {
  [ -n "$etcd_pid" ] && { kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; }
  rm -rf "$dir"
}
trap cleanup EXIT
# A port taken between the check and the bind makes etcd exit at once:
# start it again on other ports rather than run the command against nothing.
for attempt in 1 2 3 4 5; do
  cport=$(free_port); pport=$(free_port)
  rm -rf "$dir/data"
  etcd --name local --data-dir "$dir/data" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "local=http://127.0.0.1:$pport" --log-level error --logger zap >"$dir/etcd.log" 2>&1 &
  etcd_pid=$!
  up=
  for _ in $(seq 200); do
    kill -0 "$etcd_pid" 2>/dev/null || break
    (exec 3<>"/dev/tcp/127.0.0.1/$cport") 2>/dev/null && { up=1; break; }
    sleep 0.05
  done
  [ -n "$up" ] && break
  wait "$etcd_pid" 2>/dev/null || true
  etcd_pid=
done
[ -n "$up" ] || { echo "with-etcd: etcd did not start:" >&2; tail -3 "$dir/etcd.log" >&2; exit 69; }
export CONCH_ENDPOINTS="127.0.0.1:$cport"
"$@"

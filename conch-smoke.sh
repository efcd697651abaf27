#!/usr/bin/env bash
# Cluster smoke test (docs/contributing.md): run after each deploy against
# the real cluster in CONCH_ENDPOINTS. Uses a unique prefix, cleans up after
# itself, and exits 0 only when every step held.
#   CONCH_ENDPOINTS=a:2379,b:2379,c:2379 ./conch-smoke.sh
# Environment: CONCH_BIN (default: conch on PATH, conchd beside it),
# SMOKE_EVERY (the cron job's interval, default 1m).
set -uo pipefail
conch=${CONCH_BIN:-$(command -v conch || echo ./target/release/conch)}
every=${SMOKE_EVERY:-1m}
: "${CONCH_ENDPOINTS:?set CONCH_ENDPOINTS to the cluster client URLs}"
export CONCH_PREFIX="/conch-smoke/$(hostname)-$$"
name="smoke-$$"
failures=0
daemon=""

step() { printf '%-52s' "$1"; }
ok() { echo "ok"; }
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }
cleanup() {
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  "$conch" cron rm "$name" --purge >/dev/null 2>&1
}
trap cleanup EXIT

step "elect --who on a vacant office exits 1"
out=$("$conch" elect "$name" --who); rc=$?
{ [ "$rc" = 1 ] && [ -z "$out" ]; } && ok || fail "exit $rc, stdout '$out'"

step "elect acquires and exits cleanly on real quorum"
out=$("$conch" -q elect "$name" -- sh -c 'echo "$CONCH_REV"'); rc=$?
{ [ "$rc" = 0 ] && [ "$out" -gt 0 ] 2>/dev/null; } && ok || fail "exit $rc, CONCH_REV '$out'"

step "elect office is vacant again (resigned)"
"$conch" elect "$name" --who >/dev/null; rc=$?
[ "$rc" = 1 ] && ok || fail "exit $rc"

step "sema --who with no holder exits 1"
"$conch" sema "$name" --max 2 --who >/dev/null; rc=$?
[ "$rc" = 1 ] && ok || fail "exit $rc"

step "sema runs a child in a slot"
out=$("$conch" -q sema "$name" --max 2 -- sh -c 'echo "$CONCH_SLOT/$CONCH_MAX"'); rc=$?
{ [ "$rc" = 0 ] && [ "$out" = "0/2" ]; } && ok || fail "exit $rc, slot '$out'"

step "cron add @every $every"
"$conch" -q cron add "$name" --schedule "@every $every" -- \
  sh -c 'command -v logger >/dev/null && logger "conch smoke" || true'; rc=$?
[ "$rc" = 0 ] && ok || fail "exit $rc"

conchd="$(dirname "$conch")/conchd"
[ -x "$conchd" ] || conchd="$conch cron daemon"
$conchd -q --node "smoke-$$" &
daemon=$!

step "one tick later, cron ls shows exactly one result"
deadline=$((SECONDS + 150))
results=0
while [ $SECONDS -lt $deadline ]; do
  results=$("$conch" cron ls "$name" --json | grep -c '"status":"ok"')
  [ "$results" -ge 1 ] && break
  sleep 1
done
[ "$results" = 1 ] && ok || fail "$results results"

kill -TERM "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; daemon=""
step "cron rm removes the job"
"$conch" -q cron rm "$name" --purge >/dev/null; rc=$?
"$conch" cron ls "$name" >/dev/null 2>&1; rc2=$?
{ [ "$rc" = 0 ] && [ "$rc2" = 1 ]; } && ok || fail "rm exit $rc, ls exit $rc2"

if [ "$failures" -gt 0 ]; then
  echo "smoke: $failures step(s) failed"
  exit 1
fi
echo "smoke: all steps held"

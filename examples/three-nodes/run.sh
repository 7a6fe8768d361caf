#!/usr/bin/env bash
# Three horde processes sharing one horde, behind nginx on http://127.0.0.1:7001:
#   Redis (Debian's redis-server, no persistence) on 127.0.0.1:6390,
#   PostgreSQL (Debian's postgresql, a throw-away cluster) on a loopback port,
#   `horde serve` on 127.0.0.1:7011, 7012 and 7013, and nginx (Debian's nginx) in front.
# Needs: apt-get install redis-server postgresql nginx; a built horde (cargo build --release).
# Ctrl-C stops everything. Each node's log is in /tmp/horde-three-nodes/node-N.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
HORDE=${HORDE:-${CARGO_TARGET_DIR:-target}/release/horde}
DIR=/tmp/horde-three-nodes
rm -rf "$DIR" && mkdir -p "$DIR"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  nginx -c "$PWD/examples/three-nodes/nginx.conf" -s stop 2>/dev/null || true
  stop_temp_postgres
}
trap cleanup EXIT

redis-server --port 6390 --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$DIR/redis.log" 2>&1 &
pids+=($!)
source scripts/postgres-temp.sh
start_temp_postgres
for n in 1 2 3; do
  "$HORDE" serve --port "701$n" --database-url "$TEST_PG_URL" --redis-url redis://127.0.0.1:6390/ \
    --public-url http://127.0.0.1:7001 >"$DIR/node-$n.log" 2>&1 &
  pids+=($!)
  # The first process creates the schema; the others start once it listens.
  [ "$n" = 1 ] && until curl -sf http://127.0.0.1:7011/api/v2/status/heartbeat >/dev/null; do sleep 0.2; done
done
for n in 2 3; do
  until curl -sf "http://127.0.0.1:701$n/api/v2/status/heartbeat" >/dev/null; do sleep 0.2; done
done
nginx -c "$PWD/examples/three-nodes/nginx.conf"
echo "horde on http://127.0.0.1:7001 (3 processes); Ctrl-C stops it"
wait "${pids[0]}"

# Sourced by scripts/test.sh: starts a throw-away PostgreSQL cluster on loopback and exports
# TEST_PG_URL; stop_temp_postgres removes it. Needs Debian's postgresql package (initdb, pg_ctl).
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}

start_temp_postgres() {
  if [ -z "${PGBIN:-}" ] || [ ! -x "$PGBIN/initdb" ]; then
    return 1
  fi
  PG_PORT=${PG_PORT:-$((55000 + RANDOM % 5000))}
  PG_DIR=$(mktemp -d /tmp/horde-pg.XXXXXX)
  local as=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$PG_DIR"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$PGBIN/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync -E UTF8 >/dev/null
  "${as[@]}" "$PGBIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null
  export TEST_PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  PG_AS=("${as[@]}")
}

stop_temp_postgres() {
  if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
    "${PG_AS[@]}" "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}

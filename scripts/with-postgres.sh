#!/usr/bin/env bash
# Runs a command beside a throwaway PostgreSQL 15 on loopback: a cluster made in a temporary
# directory (initdb, trust authentication, fsync off unless MUSIT_PG_FSYNC=on), removed
# afterwards whatever happens.
# The command finds it in MUSIT_TEST_POSTGRES_URL (postgres://postgres@127.0.0.1:PORT/postgres),
# and pg_ctl for it in MUSIT_TEST_POSTGRES_CTL.
#   scripts/with-postgres.sh swift test --skip-build --filter MusitServerTests
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "with-postgres: PostgreSQL is not installed (make deps installs it)" >&2; exit 1; }
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$dir"
    as_pg=(runuser -u postgres --)
fi
cleanup() {
    "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
"${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-k $dir -h 127.0.0.1 -p $port -c fsync=${MUSIT_PG_FSYNC:-off} -c max_connections=400" start >/dev/null
export MUSIT_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
# For tests that stop the database and start it again: "$MUSIT_TEST_POSTGRES_CTL stop|start".
export MUSIT_TEST_POSTGRES_CTL="${as_pg[*]} $bin/pg_ctl -D $dir/data -l $dir/log -w -o '-k $dir -h 127.0.0.1 -p $port -c fsync=${MUSIT_PG_FSYNC:-off} -c max_connections=400'"
"$@"

#!/usr/bin/env bash
# The backend on PostgreSQL: the whole server test suite again, each test in a schema of its
# own, all-in-one and over the split's path; the exactly-once hammer against `--serve --database postgres://…`; and two instances
# over one database: a poll held on one woken by a message sent to the other, and the hammer
# sending to one and polling the other, and through nginx; presence and the login throttle agreed by both;
# two players in tmux through nginx over two instances,
# one of them SIGKILLed and restarted; PostgreSQL stopped for 10 s under load; and the kill -9
# crash test. All beside a throwaway PostgreSQL (scripts/with-postgres.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export MUSIT_TEST_AUDIO=${MUSIT_TEST_AUDIO:-$root/.build/test-audio}
scripts/with-postgres.sh bash -c '
    set -euo pipefail
    scripts/swift-test.sh --skip-build --no-parallel --filter MusitServerTests
    # Again with Social and Stats behind gRPC on loopback ports: the split'"'"'s path.
    MUSIT_TEST_SPLIT=1 scripts/swift-test.sh --skip-build --no-parallel --filter MusitServerTests
    cd Tests/sync
    export MUSIT_DATABASE_URL=$MUSIT_TEST_POSTGRES_URL
    export MUSIT_JWT_SECRET=a-test-signing-key-that-is-long-enough-0123456789
    python3 hammer.py --rounds "${PG_HAMMER_ROUNDS:-2}"
    psql() { "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/psql" "$@"; }
    psql -q "$MUSIT_TEST_POSTGRES_URL" -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
    python3 cross_instance.py
    psql -q "$MUSIT_TEST_POSTGRES_URL" -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
    python3 shared_state.py
    psql -q "$MUSIT_TEST_POSTGRES_URL" -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
    python3 hammer.py --rounds 1 --two-instances
    python3 database_outage.py
    psql -q "$MUSIT_TEST_POSTGRES_URL" -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
    python3 crash.py --rounds "${PG_CRASH_ROUNDS:-4}"
    # The split deployment (a gateway, Social and Stats in three processes) on PostgreSQL.
    psql -q "$MUSIT_TEST_POSTGRES_URL" -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
    MUSIT_SPLIT=1 python3 hammer.py --rounds 1
    MUSIT_SPLIT=1 python3 crash.py --rounds 2
    # Two gateways, each with its own Social and Stats, on one database: what Social commits
    # for one reaches the other through the database notices.
    psql -q "$MUSIT_TEST_POSTGRES_URL" -c "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
    MUSIT_SPLIT=1 python3 hammer.py --rounds 1 --two-instances
    cd ../..
    # The hammer through nginx over two instances: senders and pollers both round-robined.
    export MUSIT_CLUSTER_DIR=$(mktemp -d -u)
    scripts/cluster.sh up
    (cd Tests/sync && python3 hammer.py --rounds 1 --port "$(sed "s/.*://" "$MUSIT_CLUSTER_DIR/url")") || { scripts/cluster.sh down; exit 1; }
    scripts/cluster.sh down
    unset MUSIT_CLUSTER_DIR
    # scripts/cluster.sh (its own PostgreSQL, two instances, nginx) under two players in tmux.
    MUSIT_TEST_CLUSTER=1 scripts/swift-test.sh --skip-build --no-parallel --filter ClusterTests
'

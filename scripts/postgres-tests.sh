#!/usr/bin/env bash
# The backend on PostgreSQL: the whole server test suite again, each test in a schema of its
# own, and the exactly-once hammer against `--serve --database postgres://…`, all beside a
# throwaway PostgreSQL (scripts/with-postgres.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export MUSIT_TEST_AUDIO=${MUSIT_TEST_AUDIO:-$root/.build/test-audio}
scripts/with-postgres.sh bash -c '
    set -euo pipefail
    swift test --skip-build --no-parallel --filter MusitServerTests
    cd Tests/sync
    MUSIT_DATABASE_URL=$MUSIT_TEST_POSTGRES_URL MUSIT_JWT_SECRET=a-test-signing-key-that-is-long-enough-0123456789 \
        python3 hammer.py --rounds "${PG_HAMMER_ROUNDS:-2}"
'

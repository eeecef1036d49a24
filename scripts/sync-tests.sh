#!/usr/bin/env bash
# The event log's guarantees, against the built binary over HTTP: the exactly-once hammer
# (concurrent senders and pollers under CPU pressure, several rounds) and the kill -9
# crash test (every acknowledged change stored once with its event, no orphans); the
# logs' retention (pruned history answers 410 with where to resume).
# HAMMER_ROUNDS and CRASH_ROUNDS raise the counts for a longer soak.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export MUSIT_BIN=${MUSIT_BIN:-$root/.build/debug/musit-tui}
cd "$root/Tests/sync"
python3 hammer.py --rounds "${HAMMER_ROUNDS:-8}"
python3 crash.py --rounds "${CRASH_ROUNDS:-8}"
python3 retention.py

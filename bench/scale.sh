#!/usr/bin/env bash
# Scale-out, side by side in one run (release build):
#   - chat throughput and delivery p50/p99 (8 senders, 4 long-polling users): one instance on
#     SQLite, one on PostgreSQL, two on PostgreSQL behind nginx (scripts/cluster.sh)
#   - cross-instance delivery: 1,000 polls held on B, woken by a change committed through A
#   - long-poll fan-out on PostgreSQL: 10,000 polls held on one instance, beside the C floor
#   - 64 KiB Range GETs and full GETs through nginx over the two instances, beside nginx
#     serving the same file (wrk at 1/16/256 connections)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
(cd "$root" && swift build -c release --product musit-tui --static-swift-stdlib 2>&1 | tail -1)
bin="$root/.build/release/musit-tui"
# Both PostgreSQL clusters sync to disk, as in production; the instances log warnings only.
export MUSIT_BIN="$bin" MUSIT_CLUSTER_DIR=$(mktemp -d -u) MUSIT_PG_FSYNC=on MUSIT_LOG_LEVEL=warning
trap '"$root/scripts/cluster.sh" down >/dev/null 2>&1 || true' EXIT
"$root/scripts/cluster.sh" up
url=$(cat "$MUSIT_CLUSTER_DIR/url")
"$root/scripts/with-postgres.sh" bash -c "cd '$here' && python3 chat.py sqlite='$bin' postgres='$bin',\$MUSIT_TEST_POSTGRES_URL cluster='$url'"
python3 "$here/cross_delivery.py" "$(cat "$MUSIT_CLUSTER_DIR/a.port")" "$(cat "$MUSIT_CLUSTER_DIR/b.port")" 1000 200
echo
"$root/scripts/with-postgres.sh" bash -c "cd '$here' && python3 longpoll.py '$bin',\$MUSIT_TEST_POSTGRES_URL 10000"
echo
"$here/range_cluster.sh" "$url"

#!/usr/bin/env bash
# Chat throughput and delivery latency (8 senders, 4 long-polling users), this tree's
# release binary beside a baseline revision's, in one run on the same machine.
#   BASELINE_REV  the revision to compare with (default: the event log before exact sync)
#   MESSAGES      messages per sender (default 400)
# The baseline is built once in a worktree of its own (.build-baseline-src, .build-baseline).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rev=${BASELINE_REV:-a9478b8}
(cd "$root" && swift build -c release --product musit-tui --static-swift-stdlib 2>&1 | tail -1)
if [ ! -d "$root/.build-baseline-src" ]; then
    git -C "$root" worktree add -f "$root/.build-baseline-src" "$rev" >/dev/null
fi
git -C "$root/.build-baseline-src" checkout -q "$rev"
(cd "$root/.build-baseline-src" && swift build -c release --product musit-tui --static-swift-stdlib \
    --scratch-path "$root/.build-baseline" 2>&1 | tail -1)
python3 "$here/chat.py" --messages "${MESSAGES:-400}" "before=$root/.build-baseline/release/musit-tui" \
    "after=$root/.build/release/musit-tui"

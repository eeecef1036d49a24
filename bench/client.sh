#!/usr/bin/env bash
# Synced-player benchmarks: real musit-tui processes in tmux against one musit-tui --serve
# on loopback (release build):
#   - play -> first audio of a streamed track (Enter in the TUI to the first PCM bytes at
#     an ALSA file device on a FIFO)
#   - chat: sent on A -> drawn on B's screen, through the long-poll
#   - client RSS while streaming a 100 MB track vs a 3 MB one
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
mkdir -p "$out"
[ -f "$out/track100mb.mp3" ] || "$here/audio.sh" >/dev/null
(cd "$root" && swift build -c release --product musit-tui --static-swift-stdlib 2>&1 | tail -1)
python3 "$here/client.py" "$root/.build/release/musit-tui" "$out"

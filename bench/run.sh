#!/usr/bin/env bash
# Runs every benchmark and prints its figures. Results are not pass/fail.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/audio.sh"
"$here/ui.sh"
"$here/look.sh"
python3 "$here/folder.py" "$here/../.build/release/musit-tui" "$here/out"
"$here/server.sh"
MUSIT_BIN="$here/../.build/release/musit-tui" "$here/edge.sh"
"$here/chat.sh"
"$here/client.sh"
"$here/scale.sh"

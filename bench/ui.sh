#!/usr/bin/env bash
# UI benchmarks: key → frame and a 1,000,000-row queue (bench/ui), and start to first
# frame of the real binary in a pseudo-terminal.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
(cd "$here/ui" && swift run -c release musit-ui-bench 2>&1 | grep -v -E "^(\[|Building|Compiling|Write|Build of|Planning|warning: )")
(cd "$root" && swift build -c release --product musit-tui --static-swift-stdlib 2>&1 | tail -1)
python3 "$here/first_frame.py" "$root/.build/release/musit-tui" "$root/Resources/demo"

#!/usr/bin/env bash
# HTTP conformance against the built binary over real sockets: connection timeouts, the
# connection cap, HTTP/1.0 framing, HEAD, 405, preconditions, CORS and the metrics format.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export MUSIT_BIN=${MUSIT_BIN:-$root/.build/debug/musit-tui}
export MUSIT_TEST_AUDIO=${MUSIT_TEST_AUDIO:-$root/.build/test-audio}
cd "$root/Tests/http"
for t in *.py; do
    echo "== $t"
    python3 "$t"
done

#!/usr/bin/env bash
# `swift test` with its arguments, and on failure the failing tests and their issues
# printed again at the end: a long run's tail then says what failed, not only how many.
set -uo pipefail
SWIFT="${SWIFT:-swift}"
log="$(mktemp "${TMPDIR:-/tmp}/musit-swift-test.XXXXXX")"
trap 'rm -f "$log"' EXIT
"$SWIFT" test "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
    echo "--- what failed (swift test $*) ---"
    grep -E "✘|recorded an issue|error:|XCTAssert|failed \(" "$log" | grep -v "^✘ Test run with" | head -80
    grep -E "^✘ Test run with" "$log"
fi
exit "$rc"

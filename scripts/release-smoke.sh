#!/usr/bin/env bash
# The release binary is what users ship, and the optimizer can turn undefined behaviour
# that a debug build survives into a crash (a pointer escaping withUnsafePointer did, in
# the tag reader). The tests run a debug build, so this builds the release binary once
# (as bench/ does) and plays tagged files with it, headless, on a null ALSA device:
# every run must exit 0 and name the track by its tags.
#
# usage: release-smoke.sh TEST_AUDIO_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
audio=$1
(cd "$root" && swift build -c release --product musit-tui --static-swift-stdlib 2>&1 | tail -1)
bin="$root/.build/release/musit-tui"
export ALSA_CONFIG_PATH="$root/bench/asoundrc"
fail=0
check() {  # FILE EXPECTED-TEXT
    local out status
    out=$("$bin" --headless --device benchnull "$1" 2>&1) && status=0 || status=$?
    if [ "$status" != 0 ]; then
        echo "release smoke: $1 failed (exit $status): $out"; fail=1
    elif [[ "$out" != *"$2"* ]]; then
        echo "release smoke: $1 did not print \"$2\": $out"; fail=1
    fi
}
for f in "$root"/Resources/demo/*.mp3; do check "$f" "Musit Demo Band – "; done
check "$audio/tag_v24.mp3" "Artïst Four – Ωμέγα UTF-8 🎶"
check "$audio/tag_v23_utf16.mp3" " – "
check "$audio/tag_v1.mp3" " – "
[ $fail = 0 ] && echo "release smoke: the release binary played $(ls "$root"/Resources/demo/*.mp3 | wc -l) demo tracks and 3 tagged fixtures"
exit $fail

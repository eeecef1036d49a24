#!/usr/bin/env bash
# The look's cost, side by side with cmus and mpg123 on the same file and device:
#   - CPU per second of audio of the whole player in real time, with cover, album colours,
#     motion and the visualizer on, off, and paused
#   - time from a track change to the cover drawn, for a local file and for a song streamed
#     from the backend (its cover from the cover endpoint)
# The track is three minutes with a 600x600 JPEG cover.
# Needs: a release build (made here), sox, lame, mid3v2, ffmpeg, tmux, pv, cmus, mpg123.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
mkdir -p "$out"

echo "== building musit-tui (release)"
(cd "$root" && swift build -c release --product musit-tui --static-swift-stdlib 2>&1 | tail -1)

if [ ! -f "$out/look180.mp3" ]; then
    # Three minutes, a typical song: the progress bar steps once per eighth of a cell over
    # the whole song, so a short track would overstate its redraws.
    echo "== making a 180 s track with a 600x600 JPEG cover, and a 2 s one without"
    sox -n -r 44100 -c 2 -b 16 "$out/look180.wav" synth 180 pinknoise synth 180 sine mix 220 \
        synth 180 sine mix 330 tremolo 3 40 gain -12
    lame --quiet -b 320 --tt "Cover Bench" --ta "Bench" --tl "Bench Album" "$out/look180.wav" "$out/look180.mp3"
    ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=600x600" -frames:v 1 -q:v 3 "$out/look_cover.jpg"
    mid3v2 -p "$out/look_cover.jpg:Front cover:3:image/jpeg" "$out/look180.mp3"
    sox "$out/look180.wav" "$out/look2.wav" trim 0 2
    lame --quiet -b 320 --tt "First Without Cover" "$out/look2.wav" "$out/look_first.mp3"
    rm -f "$out/look180.wav" "$out/look2.wav"
fi

python3 "$here/look_measure.py" "$root/.build/release/musit-tui" "$out"

#!/usr/bin/env bash
# Audio engine benchmark, side by side with the mpg123 CLI on the same files and
# the same ALSA null device (unpaced):
#   - CPU milliseconds per second of audio (median of 3), and the ratio to mpg123
#   - peak RSS for a 3 MB and a 100 MB MP3
#   - time from process start to the first PCM bytes at the device
# Needs: a release build (made here), sox, lame, mpg123, /usr/bin/time, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
mkdir -p "$out"

echo "== building musit-tui (release)"
(cd "$root" && swift build -c release --product musit-tui --static-swift-stdlib 2>&1 | tail -1)
musit="$root/.build/release/musit-tui"

export ALSA_CONFIG_PATH="$here/asoundrc"

# Music-like test signal: pink noise with a tremolo and two tones, 180 s.
if [ ! -f "$out/track180.mp3" ]; then
    echo "== making a 180 s 320 kbps MP3"
    sox -n -r 44100 -c 2 -b 16 "$out/track180.wav" synth 180 pinknoise synth 180 sine mix 220 \
        synth 180 sine mix 330 tremolo 3 40 gain -12
    lame --quiet -b 320 "$out/track180.wav" "$out/track180.mp3"
fi
if [ ! -f "$out/track3mb.mp3" ]; then
    sox "$out/track180.wav" "$out/track75.wav" trim 0 75
    lame --quiet -b 320 "$out/track75.wav" "$out/track3mb.mp3"
fi
if [ ! -f "$out/track100mb.mp3" ]; then
    echo "== making a 100 MB MP3 (42 minutes; about a minute of encoding)"
    sox $(for _ in $(seq 14); do echo "$out/track180.wav"; done) "$out/track2520.wav"
    lame --quiet -b 320 "$out/track2520.wav" "$out/track100mb.mp3"
    rm -f "$out/track2520.wav"
fi
rm -f "$out"/*.wav

python3 "$here/audio_measure.py" "$musit" "$out"

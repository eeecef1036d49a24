#!/usr/bin/env bash
# Regenerates the demo tracks in Resources/demo (committed; `make run` plays them).
# Pure synthesis: plucked-string melodies over a bass line, tagged with lame.
# Needs python3 and lame.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../Resources/demo"
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python3 - "$tmp" <<'EOF'
import math, random, struct, sys, wave

RATE = 44100
out = sys.argv[1]

def note_freq(n):
    return 440.0 * 2 ** ((n - 69) / 12)

def pluck(freq, dur, rng, amp=0.3):
    """Karplus-Strong plucked string."""
    n = int(RATE / freq)
    buf = [rng.uniform(-1, 1) for _ in range(n)]
    samples = []
    for i in range(int(dur * RATE)):
        v = buf[i % n]
        nxt = buf[(i + 1) % n]
        buf[i % n] = 0.996 * 0.5 * (v + nxt)
        samples.append(v * amp)
    return samples

def render(name, scale, tempo, bars, seed):
    rng = random.Random(seed)
    beat = 60.0 / tempo
    total = int(bars * 4 * beat * RATE) + RATE
    left = [0.0] * total
    right = [0.0] * total
    t = 0.0
    degree = 0
    for bar in range(bars):
        root = scale[[0, 5, 3, 4][bar % 4]] - 24
        for s, v in zip(range(int(t * RATE), total), pluck(note_freq(root), 4 * beat, rng, 0.35)):
            left[s] += v; right[s] += v
        for step in range(8):
            degree = max(0, min(len(scale) - 1, degree + rng.choice([-2, -1, 1, 1, 2])))
            pan = rng.uniform(0.3, 0.7)
            start = int((t + step * beat / 2) * RATE)
            for s, v in zip(range(start, total), pluck(note_freq(scale[degree]), beat * 1.5, rng, 0.25)):
                left[s] += v * (1 - pan); right[s] += v * pan
        t += 4 * beat
    peak = max(max(abs(x) for x in left), max(abs(x) for x in right))
    with wave.open(f"{out}/{name}.wav", "wb") as w:
        w.setnchannels(2); w.setsampwidth(2); w.setframerate(RATE)
        frames = bytearray()
        for l, r in zip(left, right):
            frames += struct.pack("<hh", int(l / peak * 26000), int(r / peak * 26000))
        w.writeframes(bytes(frames))

major = [60, 62, 64, 67, 69, 72, 74, 76, 79]
minor = [57, 60, 62, 64, 67, 69, 72, 74, 76]
render("01-morning-loop", major, 112, 8, 1)
render("02-night-walk", minor, 92, 6, 2)
render("03-coda", major, 132, 6, 3)
EOF

tag() { lame --quiet -b 96 --id3v2-only --ta "Musit Demo Band" --tl "Synthesized Demos" --ty 2026 "$@"; }
tag --tt "Morning Loop" --tn 1/3 "$tmp/01-morning-loop.wav" "$out/01-morning-loop.mp3"
tag --tt "Night Walk" --tn 2/3 "$tmp/02-night-walk.wav" "$out/02-night-walk.mp3"
tag --tt "Coda" --tn 3/3 "$tmp/03-coda.wav" "$out/03-coda.mp3"
ls -l "$out"

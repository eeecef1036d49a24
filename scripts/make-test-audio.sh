#!/usr/bin/env bash
# Synthesizes the deterministic test tracks into DIR (default .build/test-audio):
# known frequencies, durations, tags and a cover image, plus the broken files the
# bad-input tests feed the player. Needs sox, lame, mid3v2 (python3-mutagen), python3, ffmpeg,
# and the reference decoders flac, oggdec (vorbis-tools) and opusdec (opus-tools).
# Writes DIR/manifest.json describing what was written; skips work when DIR is current.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../.build/test-audio}
mkdir -p "$out"
out=$(cd "$out" && pwd)
stamp="$out/.stamp"
sum=$(sha256sum "$0" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
    exit 0
fi
for tool in sox lame mid3v2 python3 ffmpeg flac oggdec opusdec; do
    command -v "$tool" >/dev/null || { echo "make-test-audio: $tool is missing (make deps installs it)" >&2; exit 1; }
done
cd "$out"
rm -rf ./*
# sox dithers when it writes 16 bits, from a random seed: -R seeds it the same every
# time, so the tracks are the same bytes on every machine and every run.
export SOX_OPTS=-R

# 440 Hz sine, 5 s, stereo 44.1 kHz: 220500 frames.
sox -n -r 44100 -c 2 -b 16 sine440.wav synth 5 sine 440 gain -6
lame --quiet -b 192 sine440.wav sine440.mp3

# One continuous sweep (6 s), and the same sweep cut in two at a point that is not
# a multiple of the MP3 frame size, for the gapless test.
sox -n -r 44100 -c 2 -b 16 sweep.wav synth 6 sine 200:4000 gain -6
sox sweep.wav sweep_a.wav trim 0s 119070s
sox sweep.wav sweep_b.wav trim 119070s
for f in sweep sweep_a sweep_b; do lame --quiet -b 320 $f.wav $f.mp3; done

# A 20 s track for HLS: several 6 s segments.
sox -n -r 44100 -c 2 -b 16 long20.wav synth 20 sine 300:900 gain -6
lame --quiet -b 160 --tt "Long Sweep" --ta "Fixture" long20.wav long20.mp3

# A 48 kHz track, to make the device reopen between formats.
sox -n -r 48000 -c 2 -b 16 sine1k_48k.wav synth 2 sine 1000 gain -6
lame --quiet -b 192 sine1k_48k.wav sine1k_48k.mp3

# A small cover image (PNG) made without image tools.
python3 - <<'EOF'
import struct, zlib
w = h = 16
raw = b"".join(b"\x00" + b"".join(bytes((x * 16, y * 16, 128)) for x in range(w)) for y in range(h))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
      chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
open("cover.png", "wb").write(png)
EOF

# Tags: ID3v2.3 in UTF-16 (lame), ID3v2.3 in Latin-1 (lame), ID3v2.4 in UTF-8 (mid3v2), ID3v1.1 (lame).
sox -n -r 44100 -c 2 -b 16 tone.wav synth 1 sine 660 gain -6
lame --quiet -b 128 --id3v2-only --id3v2-utf16 --tt "Ünïcødé Title – 東京" --ta "Ærtist Ωμέγα" \
    --tl "Albüm 🎵" --ty 1999 --tn 7/12 --ti cover.png tone.wav tag_v23_utf16.mp3
lame --quiet -b 128 --id3v2-only --id3v2-latin1 --tt "Café Müller" --ta "Señor Latin" \
    --tl "Déjà Vu" --ty 1984 --tn 3 tone.wav tag_v23_latin1.mp3
lame --quiet -b 128 tone.wav tag_v24.mp3
mid3v2 -t "Ωμέγα UTF-8 🎶" -a "Artïst Four" -A "Album v2.4" -T 11/20 -y 2021-05-04 \
    -p "cover.png:Front cover:3:image/png" tag_v24.mp3
lame --quiet -b 128 --id3v1-only --tt "Old Title" --ta "Old Artist" --tl "Old Album" --ty 1977 --tn 5 \
    tone.wav tag_v1.mp3

# FLAC, lossless: the sweep's two halves (their join must be the sweep, sample for
# sample), a tagged tone with a picture (Vorbis comments and a PICTURE block, via mutagen),
# 24-bit samples at 48 kHz with their 32-bit reference, a file cut short, and FLAC bytes
# under an .mp3 name; the 20 s sweep for streaming over many blocks.
for f in sweep sweep_a sweep_b tone long20; do sox $f.wav $f.flac; done
sox -n -r 48000 -c 2 -b 24 hires24.flac synth 1 sine 1000 gain -3
sox hires24.flac -b 32 -e signed-integer -t raw hires24.s32
sox -n -r 96000 -c 2 -b 24 hires96.flac synth 1 sine 1000 gain -3
# ffmpeg's decode of it to S32_LE (24-bit samples shifted left by 8): what plays bit-perfect.
ffmpeg -nostdin -loglevel error -y -i hires96.flac -f s32le -c:a pcm_s32le hires96.s32
cp tone.flac tagged.flac
# mutagen comes from Debian's python3-mutagen (with mid3v2): Debian's interpreter.
/usr/bin/python3 - <<'PY'
from mutagen.flac import FLAC, Picture
f = FLAC("tagged.flac")
f.clear()
f["TITLE"] = "Fläc Title – 東京"
f["ARTIST"] = "Vorbis Ärtist"
f["ALBUM"] = "Lossless 🎵"
f["TRACKNUMBER"] = "4/9"
f["DATE"] = "2003-01-02"
pic = Picture()
pic.type = 3
pic.mime = "image/png"
pic.desc = "Front"
pic.data = open("cover.png", "rb").read()
f.add_picture(pic)
f.save()
data = open("sweep_a.flac", "rb").read()
open("cut.flac", "wb").write(data[: len(data) * 6 // 10])
open("flac_named.mp3", "wb").write(open("sweep_b.flac", "rb").read())
PY

# Ogg Vorbis and Ogg Opus (lossy, so compared by correlation; their lengths are exact from
# the granule positions): the sweep's halves in Vorbis, a 48 kHz sweep cut at a sample that
# is not a multiple of Opus's 960-sample frames and its halves in Opus, tagged files with a
# METADATA_BLOCK_PICTURE cover.
ogg() { ffmpeg -nostdin -loglevel error -y -i "$1" -fflags +bitexact -flags:a +bitexact -map_metadata -1 "${@:3}" "$2"; }
for f in sweep_a sweep_b tone; do ogg $f.wav $f.ogg -c:a libvorbis -q:a 6; done
sox -n -r 48000 -c 2 -b 16 sweep48.wav synth 4 sine 200:4000 gain -6
sox sweep48.wav sweep48_a.wav trim 0s 100001s
sox sweep48.wav sweep48_b.wav trim 100001s
for f in sweep48_a sweep48_b; do ogg $f.wav $f.opus -c:a libopus -b:a 160k; done
sox -n -r 48000 -c 2 -b 16 tone48.wav synth 1 sine 660 gain -6
ogg tone48.wav tone.opus -c:a libopus -b:a 96k
cp tone.ogg tagged.ogg
cp tone.opus tagged.opus
/usr/bin/python3 - <<'PY'
import base64
from mutagen.flac import Picture
from mutagen.oggvorbis import OggVorbis
from mutagen.oggopus import OggOpus
for name, kind in (("tagged.ogg", OggVorbis), ("tagged.opus", OggOpus)):
    f = kind(name)
    f["TITLE"] = "Ogg Title – " + name.split(".")[1]
    f["ARTIST"] = "Xiph Ärtist"
    f["ALBUM"] = "Open Formats"
    f["TRACKNUMBER"] = "2"
    f["DATE"] = "2012"
    pic = Picture()
    pic.type = 3
    pic.mime = "image/png"
    pic.desc = "Front"
    pic.data = open("cover.png", "rb").read()
    f["METADATA_BLOCK_PICTURE"] = [base64.b64encode(pic.write()).decode("ascii")]
    f.save()
PY
cp sweep48_b.opus opus_named.mp3

# What the reference decoders make of the same files, raw S16LE, for byte-for-byte tests.
flac -d -s -f --force-raw-format --endian=little --sign=signed -o sweep_a.flac.raw sweep_a.flac
for f in sweep_a sweep_b; do oggdec -Q -R -o $f.ogg.raw $f.ogg; done
for f in sweep48_a sweep48_b; do opusdec --quiet --no-dither --rate 48000 $f.opus $f.opus.raw; done

# ReplayGain: a FLAC whose track gain halves it and whose album gain quarters it, one whose
# +12 dB track gain its 0.5 peak limits to x2, an MP3 with TXXX frames, an Opus with R128.
cp tone.flac gain.flac
cp tone.flac boost.flac
cp tone.opus gain.opus
lame --quiet -b 128 tone.wav gain.mp3
mid3v2 --TXXX "REPLAYGAIN_TRACK_GAIN:-6.02 dB" --TXXX "REPLAYGAIN_TRACK_PEAK:0.500000" \
    --TXXX "REPLAYGAIN_ALBUM_GAIN:-12.04 dB" gain.mp3
/usr/bin/python3 - <<'PY'
from mutagen.flac import FLAC
from mutagen.oggopus import OggOpus
f = FLAC("gain.flac")
f["REPLAYGAIN_TRACK_GAIN"] = "-6.02 dB"
f["REPLAYGAIN_TRACK_PEAK"] = "0.500000"
f["REPLAYGAIN_ALBUM_GAIN"] = "-12.04 dB"
f["REPLAYGAIN_ALBUM_PEAK"] = "0.500000"
f.save()
f = FLAC("boost.flac")
f["REPLAYGAIN_TRACK_GAIN"] = "+12.00 dB"
f["REPLAYGAIN_TRACK_PEAK"] = "0.500000"
f.save()
f = OggOpus("gain.opus")
f["R128_TRACK_GAIN"] = "-1541"
f.save()
PY

# Bad input.
: > empty.mp3
mkdir -p directory.mp3
cp sine440.wav wav_named.mp3
python3 - <<'EOF'
import random
r = random.Random(1234)
open("random.mp3", "wb").write(bytes(r.getrandbits(8) for _ in range(200_000)))
data = open("tag_v24.mp3", "rb").read()
size = 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])
open("tag_only.mp3", "wb").write(data[:size])
full = open("sine440.mp3", "rb").read()
open("truncated.mp3", "wb").write(full[: len(full) * 2 // 5])
EOF
cp sine440.mp3 unreadable.mp3
chmod 000 unreadable.mp3
# No samples at all: lame writes an Info frame and one frame its own delay and padding
# cancel out entirely.
sox -n -r 44100 -c 2 -b 16 nothing.wav trim 0 0
lame --quiet nothing.wav no_samples.mp3

# Durations: files whose true length libmpg123's estimate gets wrong, and the encoders
# and layouts the frame walk must count exactly (see MP3Scanner).
mkdir -p durations
sox -n -r 44100 -c 2 -b 16 ten.wav synth 10 sine 500 gain -6
lame --quiet -b 128 -t ten.wav durations/no_info_tag.mp3
lame --quiet -V 2 ten.wav durations/lame_vbr.mp3
lame --quiet -b 64 -m m --resample 22.05 ten.wav durations/mpeg2_mono.mp3
sox -n -r 48000 -c 2 -b 16 ten48.wav synth 7.3 sine 700 gain -6
lame --quiet -b 192 ten48.wav durations/lame_48k.mp3
ffmpeg -v error -i ten.wav -b:a 128k -y durations/ffmpeg.mp3
ffmpeg -v error -i ten.wav -b:a 128k -write_xing 0 -y durations/ffmpeg_no_xing.mp3
python3 - <<'EOF2'
import os, random
# A 400 KB cover in front of 10 s without an Info tag: the size estimate said 0:35.
r = random.Random(7)
png = open("cover.png", "rb").read()
big = png + bytes(r.getrandbits(8) for _ in range(400_000))
open("durations/big_cover.png", "wb").write(big)
# Two hours at 32 kbps without an Info tag, made by repeating the frames of 10 s
# (CBR frames stand alone well enough to decode): bytes × 8 / 32,000 = 7257.6 s.
import subprocess
subprocess.run(["lame", "--quiet", "-b", "32", "-t", "ten.wav", "ten32.mp3"], check=True)
frames = open("ten32.mp3", "rb").read()
open("durations/two_hours_32k.mp3", "wb").write(frames * 720)
os.remove("ten32.mp3")
EOF2
cp durations/no_info_tag.mp3 durations/big_cover.mp3
mid3v2 -t "Big Cover" -p "durations/big_cover.png:Front cover:3:image/png" durations/big_cover.mp3
rm durations/big_cover.png

# Covers for the look: four solid quadrants (PNG and JPEG), extremes for the contrast
# checks, and two albums to cross-fade between, each on a quiet 1 kHz tone.
mkdir -p covers
python3 - <<'EOF'
import random, struct, zlib
def png(name, w, h, pixel):
    raw = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(w)) for y in range(h))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    open(name, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                           chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
quad = [[(230, 40, 40), (40, 200, 60)], [(40, 80, 230), (240, 220, 40)]]
png("covers/quadrants.png", 64, 64, lambda x, y: quad[y // 32][x // 32])
png("covers/white.png", 32, 32, lambda x, y: (255, 255, 255))
png("covers/black.png", 32, 32, lambda x, y: (0, 0, 0))
png("covers/red.png", 32, 32, lambda x, y: (255, 0, 0))
png("covers/blue.png", 32, 32, lambda x, y: (20, 60, 255))
rng = random.Random(7)
noise = [[tuple(rng.randrange(256) for _ in range(3)) for _ in range(48)] for _ in range(48)]
png("covers/noise.png", 48, 48, lambda x, y: noise[y][x])
EOF
ffmpeg -loglevel error -y -i covers/quadrants.png -q:v 2 covers/quadrants.jpg
sox -n -r 44100 -c 2 -b 16 covers/tone.wav synth 30 sine 1000 gain -12
for c in quadrants white black red blue noise; do
    lame --quiet -b 64 --tt "Cover $c" --ta "Fixture" --tl "Album $c" covers/tone.wav covers/$c.mp3
    mid3v2 -p "covers/$c.png:Front cover:3:image/png" covers/$c.mp3
done
lame --quiet -b 64 --tt "Cover JPEG" --ta "Fixture" --tl "Album jpeg" covers/tone.wav covers/quadrants_jpeg.mp3
mid3v2 -p "covers/quadrants.jpg:Front cover:3:image/jpeg" covers/quadrants_jpeg.mp3
sox covers/tone.wav covers/short.wav trim 0 3
lame --quiet -b 64 --tt "First Album Track" --ta "Fixture" --tl "Red Album" covers/short.wav covers/fade_a.mp3
mid3v2 -p "covers/red.png:Front cover:3:image/png" covers/fade_a.mp3
lame --quiet -b 64 --tt "Second Album Track" --ta "Fixture" --tl "Blue Album" covers/tone.wav covers/fade_b.mp3
mid3v2 -p "covers/blue.png:Front cover:3:image/png" covers/fade_b.mp3
lame --quiet -b 64 --tt "A Title Far Too Long For The Now Playing Pane Of This Terminal Window" --ta "Fixture" \
    covers/tone.wav covers/long_title.mp3
rm covers/tone.wav covers/short.wav

# Third-party FLAC, Ogg and Speex files: mutagen's test data (its source release on PyPI,
# pinned and checked by hash), which holds the odd files taggers meet: invalid STREAMINFO,
# short and overwritten blocks, variable block sizes, multiplexed and multi-page Ogg.
mkdir -p mutagen
python3 -m pip download -q --no-deps --no-binary :all: -d mutagen-dl "mutagen==1.47.0" >/dev/null
echo "719fadef0a978c31b4cf3c956261b3c58b6948b32023078a2117b1de09f0fc99  mutagen-dl/mutagen-1.47.0.tar.gz" | sha256sum -c --quiet
tar -xzf mutagen-dl/mutagen-1.47.0.tar.gz -C mutagen --strip-components=3 --wildcards \
    'mutagen-1.47.0/tests/data/*.flac' 'mutagen-1.47.0/tests/data/*.ogg' 'mutagen-1.47.0/tests/data/*.opus' \
    'mutagen-1.47.0/tests/data/*.spx'
rm -rf mutagen-dl

python3 - <<'EOF'
import json
json.dump({
    "sine440": {"file": "sine440.mp3", "frequency": 440, "frames": 220500},
    "sweep": {"file": "sweep.mp3", "wav": "sweep.wav", "frames": 264600},
    "sweep_parts": [{"file": "sweep_a.mp3", "frames": 119070}, {"file": "sweep_b.mp3", "frames": 145530}],
    "tags": [
        {"file": "tag_v23_utf16.mp3", "title": "Ünïcødé Title – 東京", "artist": "Ærtist Ωμέγα",
         "album": "Albüm 🎵", "year": 1999, "track": 7, "cover": "cover.png", "frames": 44100},
        {"file": "tag_v23_latin1.mp3", "title": "Café Müller", "artist": "Señor Latin",
         "album": "Déjà Vu", "year": 1984, "track": 3, "cover": None, "frames": 44100},
        {"file": "tag_v24.mp3", "title": "Ωμέγα UTF-8 🎶", "artist": "Artïst Four",
         "album": "Album v2.4", "year": 2021, "track": 11, "cover": "cover.png", "frames": 44100},
        {"file": "tag_v1.mp3", "title": "Old Title", "artist": "Old Artist",
         "album": "Old Album", "year": 1977, "track": 5, "cover": None, "frames": 44100},
    ],
}, open("manifest.json", "w"), ensure_ascii=False, indent=1)
EOF
echo "$sum" > "$stamp"

#!/usr/bin/env bash
# Writes link/player-first.order, the order in which Package.swift asks lld to place the
# executable's symbols, so that a process that only plays (`--headless`, `--offline`, the
# player on a remote server) faults in as few pages of the one binary as it can.
#
# The kernel maps file-backed pages in 64 KiB windows around each first touch, so what
# counts is how many windows the player's work touches, not how many bytes it runs.
# A headless playback runs about 0.5 MB of functions, but spread over the binary's 40 MB
# of text they touched 215 windows (8.6 MB resident). The file therefore lists:
#   1. every function the player was seen to run, measured with callgrind: headless
#      playback of a gapless pair, and the offline TUI in tmux drawing, filtering and
#      playing — the Swift runtime, the standard library, Foundation and Dispatch
#      included, not only the player's own modules;
#   2. then the symbols of the player's own modules and of the libraries only it uses
#      (the functions it runs less often, and the type metadata, witness tables and
#      constants beside them, which lld places first in their own sections).
# The backend's code (NIO, Hummingbird, gRPC, OpenTelemetry, PostgreSQL, BoringSSL…)
# follows in one block.
#
# Run after a release build (make release); needs valgrind and tmux. Names that have
# since gone are ignored by the linker and new ones are placed after the list, so the file
# need only be regenerated after large changes to the player.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-.build/release}
bin="$build/musit-tui"
nm=$(command -v llvm-nm || echo /opt/swift/usr/bin/llvm-nm)
objcopy=$(command -v llvm-objcopy || echo /opt/swift/usr/bin/llvm-objcopy)
audio=${MUSIT_TEST_AUDIO:-.build/test-audio}
for tool in valgrind tmux; do
    command -v "$tool" >/dev/null || { echo "generate-link-order: $tool is needed" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "generate-link-order: no $bin; build first" >&2; exit 1; }
scripts/make-test-audio.sh "$audio"

work=$(mktemp -d)
trap 'tmux -L musit-order kill-server 2>/dev/null || true; rm -rf "$work"' EXIT
# valgrind cannot read the DWARF the Swift toolchain writes; the symbol table is enough.
"$objcopy" --strip-debug "$bin" "$work/musit-tui"
export ALSA_CONFIG_PATH=$PWD/bench/asoundrc
grind() {
    valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
        --callgrind-out-file="$work/$1.out" "${@:2}" >"$work/$1.log" 2>&1
}

# Headless: a gapless pair, one of them with a cover and tags.
grind headless "$work/musit-tui" --headless --device benchnull \
    "$audio/sweep_a.mp3" "$audio/sweep_b.mp3" "$audio/tag_v24.mp3"

# The TUI, offline, in a terminal of its own: draw, move, filter, play, quit.
export XDG_CACHE_HOME=$work/cache XDG_CONFIG_HOME=$work/config XDG_DATA_HOME=$work/data
tmux -L musit-order new-session -d -x 120 -y 40 \
    "valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
     --callgrind-out-file=$work/tui.out $work/musit-tui --offline --device benchnull $audio 2>$work/tui.log"
sleep 15
for keys in j j k Enter / s w Enter Escape Tab Tab l l h; do
    tmux -L musit-order send-keys "$keys" 2>/dev/null || true
    sleep 1
done
sleep 5
tmux -L musit-order send-keys q y 2>/dev/null || true
for _ in $(seq 1 60); do [ -f "$work/tui.out" ] && ! tmux -L musit-order has-session 2>/dev/null && break; sleep 1; done

python3 - "$work" >"$work/hot" <<'EOF'
import glob, sys
names = set()
for path in glob.glob(sys.argv[1] + "/*.out"):
    ob = None
    for line in open(path, errors="replace"):
        if line.startswith("ob="):
            ob = line[3:].strip()
        elif line.startswith("fn=") and ob and ob.endswith("/musit-tui"):
            name = line[3:].strip().split("'")[0]
            if name and not name.startswith("0x"):
                names.add(name)
print("\n".join(sorted(names)))
EOF
hot=$(wc -l <"$work/hot")
[ "$hot" -gt 500 ] || { echo "generate-link-order: only $hot functions seen; see $work/*.log" >&2; cat "$work"/*.log >&2; exit 1; }

modules=(musit_tui MusitApp MusitAudio MusitCodecs MusitTerminal MusitRender MusitViewModel MusitArt MusitImage MusitLibrary
         MusitConfig MusitClient MusitAPI ArgumentParser ArgumentParserToolInfo Logging)
for m in "${modules[@]}"; do
    [ -d "$build/$m.build" ] || { echo "generate-link-order: no $build/$m.build; build first" >&2; exit 1; }
    "$nm" --defined-only --format=just-symbols "$build/$m.build"/*.o
done | awk 'NF' | LC_ALL=C sort -u >"$work/modules"
# The functions seen first, then the modules' symbols not already listed.
{ cat "$work/hot"; grep -vxFf "$work/hot" "$work/modules"; } >link/player-first.order
echo "generate-link-order: $hot functions seen running, $(wc -l < link/player-first.order) symbols in link/player-first.order"
